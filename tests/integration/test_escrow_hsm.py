"""HSM escrow mode against a real SoftHSM2 token (:mod:`mailseal.escrow.hsm`).

A throwaway SoftHSM2 configuration and token directory are made under pytest's temporary
directory (nothing touches /var/lib/softhsm). SoftHSM2 reads its configuration once per
process, so the fixture restarts the module on this configuration and, afterwards, on the one
that was loaded before (if another test module had set one up).

Cases: the escrow key is made inside the token, sensitive, non-extractable and derive-only;
records of several sizes (an RSA-3072 and a P-256 PKCS#8 key among them) sealed in software
open through the token, on every supported curve; a wrong record id, altered fields, another
escrow key and keys that are not escrow keys are refused; a taken label and a wrong PIN are
refused; the token's ECDH matches cryptography's.

Needs SoftHSM2 (Debian package ``softhsm2``): skipped without it, failed when
MAILSEAL_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailseal.errors import AlgorithmError, EscrowError, HsmError
from mailseal.escrow.hsm import (
    MAX_SECRET,
    HsmSealedRecord,
    create_hsm_escrow_key,
    open_hsm_record,
    seal_hsm_record,
)
from mailseal.keys.base import SignatureScheme
from mailseal.keys.pkcs11 import Pkcs11Token, find_key, generate_key

from ._softhsm import private_softhsm

PIN = "2468-escrow"
SO_PIN = "1357-so"
WRONG_PIN = "wrong-0815"
ESCROW_TOKEN = "mailseal-escrow-hsm"
SPARE_TOKEN = "mailseal-escrow-spare"  # never held open: a login on it really checks the PIN
CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
}


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SoftHSM2 module, running on a private configuration with two initialised tokens."""
    hsm = private_softhsm(
        tmp_path_factory.mktemp("softhsm-escrow"),
        (ESCROW_TOKEN, SPARE_TOKEN),
        pin=PIN,
        so_pin=SO_PIN,
    )
    import pkcs11

    lib = pkcs11.lib(os.path.realpath(hsm.module))
    previous = os.environ.get("SOFTHSM2_CONF")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(hsm.conf))
        lib.reinitialize()  # the module reads SOFTHSM2_CONF when it initialises
        yield hsm.module
    if previous is not None:
        lib.reinitialize()  # back to the configuration another module's tests set up


@pytest.fixture(scope="module")
def token(softhsm: Path) -> Iterator[Pkcs11Token]:
    with Pkcs11Token(softhsm, ESCROW_TOKEN, PIN) as tok:
        yield tok


@pytest.fixture(scope="module")
def escrow_keys(token: Pkcs11Token) -> dict[str, bytes]:
    """One escrow key per supported curve (label ``escrow-<curve>``): its SPKI DER."""
    return {kt: create_hsm_escrow_key(token, f"escrow-{kt}", key_type=kt) for kt in CURVES}  # type: ignore[arg-type]


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def secrets() -> dict[str, bytes]:
    return {
        "empty": b"",
        "one byte": b"\x00",
        "rsa3072 pkcs8": _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=3072)),
        "p256 pkcs8": _pkcs8(ec.generate_private_key(ec.SECP256R1())),
        "largest": os.urandom(MAX_SECRET),
    }


# --- the escrow key ------------------------------------------------------------------------------


def test_escrow_key_is_an_ec_key_made_in_the_token(
    token: Pkcs11Token, escrow_keys: dict[str, bytes]
) -> None:
    for kt, spki in escrow_keys.items():
        public = serialization.load_der_public_key(spki)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == CURVES[kt].name
        key = find_key(token, f"escrow-{kt}")
        assert (
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == spki
        )
    default = create_hsm_escrow_key(token, "escrow-default")
    assert isinstance(serialization.load_der_public_key(default).curve, ec.SECP384R1)  # type: ignore[union-attr]


def test_escrow_private_key_is_sensitive_non_extractable_and_derive_only(
    softhsm: Path, token: Pkcs11Token, escrow_keys: dict[str, bytes]
) -> None:
    import pkcs11

    a = pkcs11.Attribute
    key = find_key(token, "escrow-p384")
    assert key.protection().hardware_bound
    # Straight through python-pkcs11 (shares mailseal's login on this token).
    lib = pkcs11.lib(os.path.realpath(softhsm))
    with lib.get_token(token_label=ESCROW_TOKEN).open() as session:
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="escrow-p384")
        assert private[a.SENSITIVE] is True
        assert private[a.EXTRACTABLE] is False
        assert private[a.ALWAYS_SENSITIVE] is True and private[a.NEVER_EXTRACTABLE] is True
        assert private[a.DERIVE] is True
        assert private[a.SIGN] is False and private[a.DECRYPT] is False
        assert private[a.UNWRAP] is False
        assert private[a.TOKEN] is True and private[a.PRIVATE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[a.VALUE]
    # The token refuses to sign with it.
    with pytest.raises(HsmError, match=r"may not sign \(CKA_SIGN is false\)"):
        key.sign(b"data", SignatureScheme("ecdsa", "sha384"))


def test_a_taken_label_is_refused(token: Pkcs11Token, escrow_keys: dict[str, bytes]) -> None:
    with pytest.raises(HsmError, match="already holds an object labelled 'escrow-p384'"):
        create_hsm_escrow_key(token, "escrow-p384")
    generate_key(token, "a-signing-key", "p256")
    with pytest.raises(HsmError, match="already holds an object labelled 'a-signing-key'"):
        create_hsm_escrow_key(token, "a-signing-key")


def test_only_ec_escrow_keys(token: Pkcs11Token) -> None:
    with pytest.raises(EscrowError, match="p256, p384 or p521"):
        create_hsm_escrow_key(token, "escrow-rsa", key_type="rsa3072")  # type: ignore[arg-type]
    with pytest.raises(AlgorithmError, match="cannot be generated for key agreement"):
        generate_key(token, "derive-rsa", "rsa3072", usage="derive")
    assert "escrow-rsa" not in token.key_labels() and "derive-rsa" not in token.key_labels()


# --- sealing and opening -------------------------------------------------------------------------


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize("name", ["empty", "one byte", "rsa3072 pkcs8", "p256 pkcs8", "largest"])
def test_records_round_trip(
    token: Pkcs11Token,
    escrow_keys: dict[str, bytes],
    secrets: dict[str, bytes],
    curve: str,
    name: str,
) -> None:
    secret = secrets[name]
    record_id = f"cert-{curve}-{name}".encode()
    record = seal_hsm_record(escrow_keys[curve], record_id, secret)
    size = (CURVES[curve].key_size + 7) // 8
    assert len(record.ephemeral) == 1 + 2 * size and record.ephemeral[0] == 4
    assert len(record.wrapped_key) == 40 and len(record.nonce) == 12
    assert len(record.ciphertext) == len(secret) + 16
    assert open_hsm_record(token, f"escrow-{curve}", record_id, record) == secret


def test_archived_keys_load_after_opening(
    token: Pkcs11Token, escrow_keys: dict[str, bytes], secrets: dict[str, bytes]
) -> None:
    for name, cls in (
        ("rsa3072 pkcs8", rsa.RSAPrivateKey),
        ("p256 pkcs8", ec.EllipticCurvePrivateKey),
    ):
        record = seal_hsm_record(escrow_keys["p384"], name.encode(), secrets[name])
        opened = open_hsm_record(token, "escrow-p384", name.encode(), record)
        assert isinstance(serialization.load_der_private_key(opened, None), cls)


def test_each_seal_is_fresh(escrow_keys: dict[str, bytes]) -> None:
    one = seal_hsm_record(escrow_keys["p256"], b"id", b"same secret")
    two = seal_hsm_record(escrow_keys["p256"], b"id", b"same secret")
    assert one.ephemeral != two.ephemeral and one.wrapped_key != two.wrapped_key
    assert one.ciphertext != two.ciphertext


def test_a_wrong_record_id_is_refused(token: Pkcs11Token, escrow_keys: dict[str, bytes]) -> None:
    record = seal_hsm_record(escrow_keys["p384"], b"record-1", b"the archived key")
    with pytest.raises(EscrowError, match="not the record with this id"):
        open_hsm_record(token, "escrow-p384", b"record-2", record)
    with pytest.raises(EscrowError, match="record id is 1 to"):
        open_hsm_record(token, "escrow-p384", b"", record)


def _flip(data: bytes, at: int = -1) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _other_point(curve: str) -> bytes:
    return (
        ec.generate_private_key(CURVES[curve])
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


ALTERATIONS = {
    "ephemeral: another point": (
        lambda r: dataclasses.replace(r, ephemeral=_other_point("p384")),
        "does not open with escrow key",
    ),
    "ephemeral: off the curve": (
        lambda r: dataclasses.replace(r, ephemeral=_flip(r.ephemeral)),
        "not a point on the curve",
    ),
    "ephemeral: compressed": (
        lambda r: dataclasses.replace(r, ephemeral=b"\x02" + r.ephemeral[1:49]),
        "not an uncompressed point",
    ),
    "wrapped key": (
        lambda r: dataclasses.replace(r, wrapped_key=_flip(r.wrapped_key, 3)),
        "does not open with escrow key",
    ),
    "wrapped key: truncated": (
        lambda r: dataclasses.replace(r, wrapped_key=r.wrapped_key[:-8]),
        "wrong size",
    ),
    "nonce": (
        lambda r: dataclasses.replace(r, nonce=_flip(r.nonce)),
        "nonce or ciphertext was altered",
    ),
    "nonce: empty": (lambda r: dataclasses.replace(r, nonce=b""), "wrong size"),
    "ciphertext": (
        lambda r: dataclasses.replace(r, ciphertext=_flip(r.ciphertext, 0)),
        "nonce or ciphertext was altered",
    ),
    "ciphertext: tag": (
        lambda r: dataclasses.replace(r, ciphertext=_flip(r.ciphertext)),
        "nonce or ciphertext was altered",
    ),
    "ciphertext: truncated": (
        lambda r: dataclasses.replace(r, ciphertext=r.ciphertext[:-1]),
        "nonce or ciphertext was altered",
    ),
    "ciphertext: too short": (
        lambda r: dataclasses.replace(r, ciphertext=r.ciphertext[:15]),
        "impossible size",
    ),
    "ciphertext: too long": (
        lambda r: dataclasses.replace(r, ciphertext=bytes(MAX_SECRET + 17)),
        "impossible size",
    ),
    "not bytes": (
        lambda r: dataclasses.replace(r, nonce=r.nonce.hex()),
        "must be bytes",
    ),
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_altered_records_are_refused(
    token: Pkcs11Token, escrow_keys: dict[str, bytes], alteration: str
) -> None:
    record = seal_hsm_record(escrow_keys["p384"], b"record-x", b"the archived key " * 10)
    change, message = ALTERATIONS[alteration]
    altered: HsmSealedRecord = change(record)  # type: ignore[no-untyped-call]
    assert altered != record
    with pytest.raises(EscrowError, match=message):
        open_hsm_record(token, "escrow-p384", b"record-x", altered)
    # the original still opens
    assert open_hsm_record(token, "escrow-p384", b"record-x", record) == b"the archived key " * 10


def test_another_escrow_key_is_refused(token: Pkcs11Token, escrow_keys: dict[str, bytes]) -> None:
    record = seal_hsm_record(escrow_keys["p384"], b"record-y", b"secret")
    # same curve, another key: the token computes a different secret and the unwrap fails
    with pytest.raises(EscrowError, match="sealed to another escrow key"):
        open_hsm_record(token, "escrow-default", b"record-y", record)
    # another curve: the ephemeral point does not even fit
    with pytest.raises(EscrowError, match="sealed to another key"):
        open_hsm_record(token, "escrow-p256", b"record-y", record)


def test_keys_that_are_not_escrow_keys_are_refused(
    token: Pkcs11Token, escrow_keys: dict[str, bytes]
) -> None:
    generate_key(token, "an-rsa-signing-key", "rsa2048")
    generate_key(token, "a-p384-signing-key", "p384")
    record = seal_hsm_record(escrow_keys["p384"], b"record-z", b"secret")
    with pytest.raises(EscrowError, match="is not an HSM escrow key"):
        open_hsm_record(token, "an-rsa-signing-key", b"record-z", record)
    # an EC signing key: the token refuses to derive with it
    with pytest.raises(HsmError, match=r"may not be used for key agreement \(CKA_DERIVE"):
        open_hsm_record(token, "a-p384-signing-key", b"record-z", record)
    with pytest.raises(HsmError, match="no private key labelled 'no-such-key'"):
        open_hsm_record(token, "no-such-key", b"record-z", record)


def test_token_ecdh_matches_cryptography(token: Pkcs11Token, escrow_keys: dict[str, bytes]) -> None:
    for kt, curve in CURVES.items():
        key = find_key(token, f"escrow-{kt}")
        mine = ec.generate_private_key(curve)
        public = key.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert key.ecdh(mine.public_key()) == mine.exchange(ec.ECDH(), public)
    with pytest.raises(AlgorithmError, match="not on the curve"):
        find_key(token, "escrow-p256").ecdh(ec.generate_private_key(ec.SECP384R1()).public_key())
    generate_key(token, "rsa-for-ecdh", "rsa2048")
    with pytest.raises(AlgorithmError, match="cannot do ECDH"):
        find_key(token, "rsa-for-ecdh").ecdh(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_no_derived_secrets_are_left_on_the_token(
    softhsm: Path, token: Pkcs11Token, escrow_keys: dict[str, bytes]
) -> None:
    import pkcs11

    record = seal_hsm_record(escrow_keys["p256"], b"r", b"s")
    for _ in range(5):
        open_hsm_record(token, "escrow-p256", b"r", record)
    login = token._login
    assert login.session is not None
    secrets = list(
        login.session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY})
    )
    assert secrets == []


def test_concurrent_opening_from_threads(token: Pkcs11Token, escrow_keys: dict[str, bytes]) -> None:
    records = [
        (
            f"t-{i}".encode(),
            seal_hsm_record(escrow_keys["p384"], f"t-{i}".encode(), bytes([i]) * 99),
        )
        for i in range(8)
    ]
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for i, (rid, record) in enumerate(records):
                assert open_hsm_record(token, "escrow-p384", rid, record) == bytes([i]) * 99
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- PINs ----------------------------------------------------------------------------------------


def test_a_wrong_pin_is_refused(softhsm: Path, token: Pkcs11Token) -> None:
    with pytest.raises(HsmError) as exc:
        Pkcs11Token(softhsm, SPARE_TOKEN, WRONG_PIN)
    assert str(exc.value) == f"wrong PIN for token {SPARE_TOKEN!r}"
    assert WRONG_PIN not in str(exc.value) and PIN not in str(exc.value)
    # the token held open checks a second opening's PIN itself
    with pytest.raises(HsmError, match="wrong PIN"):
        Pkcs11Token(softhsm, ESCROW_TOKEN, WRONG_PIN)
    # and a right PIN still works
    with Pkcs11Token(softhsm, SPARE_TOKEN, PIN) as spare:
        assert spare.key_labels() == []
