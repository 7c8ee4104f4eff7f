"""mailseal.escrow.hsm, the parts that need no token: officers' approval key files, approval
messages and their signatures, and sealing records to an HSM escrow public key (opened here
with a software key standing in for the token's ECDH)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import pickle
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mailseal.errors import EscrowError, PasswordError
from mailseal.escrow import hsm
from mailseal.escrow.hsm import (
    APPROVAL_KEY_FORMAT,
    ApprovalKey,
    approval_message,
    create_approval_key,
    open_approval_key,
    seal_hsm_record,
    verify_approval,
)
from mailseal.escrow.protect import KdfCost

FAST = KdfCost(1, 8 << 20)  # tests only: the default costs 256 MiB per derivation
PASS = b"officer approval passphrase"
EXPIRES = dt.datetime(2031, 5, 17, 12, 30, tzinfo=dt.UTC)
SET_ID = bytes(range(16))


@pytest.fixture(scope="module")
def officer_key() -> tuple[bytes, bytes]:
    return create_approval_key(PASS, cost=FAST)


def _message(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "set_id": SET_ID,
        "request_id": "req-2031-0042",
        "officer": "ann",
        "record_ids": [b"cert-17", b"cert-3", b"cert-200"],
        "expires_at": EXPIRES,
    }
    fields.update(changes)
    return approval_message(**fields)


# --- approval key files --------------------------------------------------------------------------


def test_approval_key_file_round_trip(officer_key: tuple[bytes, bytes]) -> None:
    public, data = officer_key
    assert len(public) == 32
    doc = json.loads(data)
    assert doc["format"] == APPROVAL_KEY_FORMAT and doc["version"] == 1
    assert doc["algorithm"] == "ed25519" and doc["public_key"] == public.hex()
    assert {k: doc["kdf"][k] for k in ("name", "opslimit", "memlimit")} == {
        "name": "argon2id",
        "opslimit": 1,
        "memlimit": 8 << 20,
    }
    key = open_approval_key(data, PASS)
    assert isinstance(key, ApprovalKey) and key.public_key == public
    message = _message()
    verify_approval(public, message, key.sign(message))


def test_the_secret_is_never_shown(officer_key: tuple[bytes, bytes]) -> None:
    public, data = officer_key
    key = open_approval_key(data, PASS)
    seed = key._private.private_bytes_raw()
    assert seed.hex() not in data.decode()
    for text in (repr(key), str(key), f"{key!r}"):
        assert seed.hex() not in text and seed.hex()[:16] not in text
        assert public.hex()[:16] in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)


def test_wrong_passphrase(officer_key: tuple[bytes, bytes]) -> None:
    with pytest.raises(PasswordError, match="wrong passphrase"):
        open_approval_key(officer_key[1], b"not the passphrase")
    with pytest.raises(PasswordError, match="at least 8"):
        create_approval_key(b"short", cost=FAST)


def _edit(data: bytes, **changes: Any) -> bytes:
    doc = json.loads(data)
    for name, value in changes.items():
        if name.startswith("kdf_"):
            doc["kdf"] = {**doc["kdf"], name[4:]: value}
        else:
            doc[name] = value
    return json.dumps(doc).encode()


def test_altered_header_fields_are_refused(officer_key: tuple[bytes, bytes]) -> None:
    _public, data = officer_key
    other_public, _ = create_approval_key(PASS, cost=FAST)
    doc = json.loads(data)
    salt = bytearray.fromhex(doc["kdf"]["salt"])
    salt[0] ^= 1
    # Bound in as associated data (or feeding the KDF): the file no longer opens.
    for changes in (
        {"public_key": other_public.hex()},  # claim another officer's key
        {"public_key": doc["public_key"].upper()},
        {"kdf_salt": salt.hex()},
        {"kdf_opslimit": 2},
        {"kdf_memlimit": 16 << 20},
        {"nonce": "00" * 12},
        {"ciphertext": doc["ciphertext"][:-2] + "00"},
    ):
        with pytest.raises(PasswordError, match="or the file was altered"):
            open_approval_key(_edit(data, **changes), PASS)
    # Refused outright.
    for changes, message in (
        ({"format": "mailseal-escrow-share"}, "not a mailseal approval key file"),
        ({"version": 2}, "unsupported"),
        ({"version": True}, "wrong type"),
        ({"version": "1"}, "wrong type"),
        ({"algorithm": "ed448"}, "unsupported"),
        ({"kdf_name": "scrypt"}, "unknown KDF"),
        ({"kdf_opslimit": "1"}, "wrong type"),
        ({"kdf_salt": "00" * 8}, "salt has the wrong length"),
        ({"public_key": "00" * 31}, "wrong length"),
        ({"nonce": "00" * 16}, "wrong length"),
        ({"comment": "hello"}, "unexpected fields"),
    ):
        with pytest.raises(EscrowError, match=message):
            open_approval_key(_edit(data, **changes), PASS)


def test_excessive_kdf_cost_is_refused(officer_key: tuple[bytes, bytes]) -> None:
    data = officer_key[1]
    for changes in ({"kdf_memlimit": 1 << 40}, {"kdf_opslimit": 1000}, {"kdf_opslimit": 0},
                    {"kdf_memlimit": 1024}):  # fmt: skip
        with pytest.raises(EscrowError, match="out of bounds"):
            open_approval_key(_edit(data, **changes), PASS)
    with pytest.raises(EscrowError, match="out of bounds"):
        create_approval_key(PASS, cost=KdfCost(1, 1 << 40))


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"{}",
        b"[1]",
        b"null",
        b"not json",
        b"\xff\xfe{}",
        b"x" * 100_000,
        b"[" * 15_000,  # deeper than the parser's recursion limit
        b'{"format": 1}',
        b'{"format": "mailseal-escrow-approval-key"}',
    ],
)
def test_junk_is_refused(junk: bytes) -> None:
    with pytest.raises(EscrowError):
        open_approval_key(junk, PASS)


def test_junk_in_the_right_shape_is_refused(officer_key: tuple[bytes, bytes]) -> None:
    data = officer_key[1]
    for changes in (
        {"kdf": "argon2id"},
        {"kdf": None},
        {"nonce": "zz" * 12},
        {"nonce": 12},
        {"ciphertext": None},
        {"kdf_salt": ["00"]},
    ):
        with pytest.raises(EscrowError):
            open_approval_key(_edit(data, **changes), PASS)


# --- approval messages and signatures ------------------------------------------------------------


def test_approval_message_is_canonical() -> None:
    message = _message()
    assert message.startswith(hsm.APPROVAL_DOMAIN)
    assert _message(record_ids=[b"cert-200", b"cert-3", b"cert-17"]) == message
    assert _message(record_ids=(b"cert-3", b"cert-17", b"cert-200")) == message
    # the same instant in another time zone is the same approval
    cet = dt.timezone(dt.timedelta(hours=2))
    assert _message(expires_at=EXPIRES.astimezone(cet)) == message
    # length prefixes: moving a character from one field to the next changes the message
    assert _message(request_id="ab", officer="c") != _message(request_id="a", officer="bc")
    assert _message(record_ids=[b"ab", b"c"]) != _message(record_ids=[b"a", b"bc"])
    assert _message(expires_at=EXPIRES + dt.timedelta(microseconds=1)) != message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"record_ids": []}, "1 to"),
        ({"record_ids": [b"a", b"b", b"a"]}, "names a record twice"),
        ({"record_ids": b"cert-1"}, "sequence of byte strings"),
        ({"record_ids": ["cert-1"]}, "record id is"),
        ({"record_ids": [b""]}, "record id is"),
        ({"expires_at": dt.datetime(2031, 5, 17, 12, 30)}, "time zone"),
        ({"expires_at": "2031-05-17"}, "time zone"),
        ({"set_id": b""}, "escrow set id"),
        ({"set_id": "abc"}, "escrow set id"),
        ({"officer": ""}, "officer"),
        ({"officer": "x" * 257}, "officer"),
        ({"officer": "\udcff"}, "not valid Unicode"),
        ({"request_id": b"req"}, "request id"),
    ],
)
def test_bad_approval_fields_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EscrowError, match=message):
        _message(**changes)


def test_signature_over_anything_else_is_refused(officer_key: tuple[bytes, bytes]) -> None:
    public, data = officer_key
    key = open_approval_key(data, PASS)
    signature = key.sign(_message())
    verify_approval(public, _message(), signature)
    for changes in (
        {"request_id": "req-2031-0043"},
        {"officer": "bo"},
        {"record_ids": [b"cert-17", b"cert-3"]},
        {"record_ids": [b"cert-17", b"cert-3", b"cert-200", b"cert-201"]},
        {"record_ids": [b"cert-17", b"cert-3", b"cert-201"]},
        {"set_id": bytes(16)},
        {"expires_at": EXPIRES + dt.timedelta(days=1)},
    ):
        with pytest.raises(EscrowError, match="does not verify"):
            verify_approval(public, _message(**changes), signature)
    # another officer's key
    other_public, other_data = create_approval_key(PASS, cost=FAST)
    with pytest.raises(EscrowError, match="does not verify"):
        verify_approval(other_public, _message(), signature)
    other = open_approval_key(other_data, PASS)
    with pytest.raises(EscrowError, match="does not verify"):
        verify_approval(public, _message(), other.sign(_message()))
    # an altered signature
    with pytest.raises(EscrowError, match="does not verify"):
        verify_approval(public, _message(), signature[:-1] + bytes([signature[-1] ^ 1]))


def test_approval_keys_sign_approvals_only(officer_key: tuple[bytes, bytes]) -> None:
    public, data = officer_key
    key = open_approval_key(data, PASS)
    with pytest.raises(EscrowError, match="approval messages only"):
        key.sign(b"a certificate, a CRL, anything else")
    # and a signature over anything else made with the same key is not an approval
    raw = key._private.sign(b"anything else")
    with pytest.raises(EscrowError, match="not a mailseal approval message"):
        verify_approval(public, b"anything else", raw)


def test_bad_public_keys_and_signatures_are_refused(officer_key: tuple[bytes, bytes]) -> None:
    public, data = officer_key
    message = _message()
    signature = open_approval_key(data, PASS).sign(message)
    identity = (1).to_bytes(32, "little")  # the neutral element: small order
    for bad in (b"", public[:31], public + b"\x00", identity, bytes(32), b"\xff" * 32):
        with pytest.raises(EscrowError, match="approval public key"):
            verify_approval(bad, message, signature)
    for bad_sig in (b"", signature[:63], signature + b"\x00"):
        with pytest.raises(EscrowError, match="64 bytes"):
            verify_approval(public, message, bad_sig)
    # a small-order key with the signature that "verifies" under it in lax implementations
    forged = identity + bytes(32)
    with pytest.raises(EscrowError):
        verify_approval(identity, message, forged)


def test_approval_signatures_are_plain_ed25519() -> None:
    # An approval key is plain Ed25519: any RFC 8032 verifier checks its signatures.
    public, data = create_approval_key(PASS, cost=FAST)
    key = open_approval_key(data, PASS)
    message = _message(officer="cy")
    ed25519.Ed25519PublicKey.from_public_bytes(public).verify(key.sign(message), message)


# --- sealing to an HSM escrow public key (software stand-in for the token) -----------------------


def _spki(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _soft_open(private: ec.EllipticCurvePrivateKey, record_id: bytes, record: Any) -> bytes:
    def exchange(peer: ec.EllipticCurvePublicKey) -> bytes:
        return private.exchange(ec.ECDH(), peer)

    return hsm._open(private.public_key(), exchange, record_id, record, "'soft'")


@pytest.mark.parametrize("curve", [ec.SECP256R1, ec.SECP384R1, ec.SECP521R1])
def test_seal_round_trip_with_a_software_key(curve: type[ec.EllipticCurve]) -> None:
    private = ec.generate_private_key(curve())
    record = seal_hsm_record(_spki(private), b"record-1", b"archived key bytes")
    assert _soft_open(private, b"record-1", record) == b"archived key bytes"
    with pytest.raises(EscrowError, match="not the record with this id"):
        _soft_open(private, b"record-2", record)
    other = ec.generate_private_key(curve())
    with pytest.raises(EscrowError, match="sealed to another escrow key"):
        _soft_open(other, b"record-1", record)
    moved = dataclasses.replace(record, wrapped_key=bytes(40))
    with pytest.raises(EscrowError, match="sealed to another escrow key"):
        _soft_open(private, b"record-1", moved)


def test_seal_refuses_keys_that_are_not_escrow_keys() -> None:
    rsa_spki = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    k1 = _spki(ec.generate_private_key(ec.SECP256K1()))
    ed = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for spki in (rsa_spki, k1, ed):
        with pytest.raises(EscrowError, match="not an HSM escrow key"):
            seal_hsm_record(spki, b"id", b"secret")
    for junk in (
        b"",
        b"\x30\x00",
        b"not DER at all",
        _spki(ec.generate_private_key(ec.SECP256R1()))[:-1],
    ):
        with pytest.raises(EscrowError, match="not a DER SubjectPublicKeyInfo"):
            seal_hsm_record(junk, b"id", b"secret")


def test_seal_bounds() -> None:
    spki = _spki(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(EscrowError, match="at most"):
        seal_hsm_record(spki, b"id", bytes(hsm.MAX_SECRET + 1))
    with pytest.raises(EscrowError, match="record id is"):
        seal_hsm_record(spki, b"", b"secret")
    with pytest.raises(EscrowError, match="record id is"):
        seal_hsm_record(spki, bytes(hsm.MAX_RECORD_ID + 1), b"secret")
