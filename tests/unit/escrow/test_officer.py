"""mailseal.escrow.officer: share files encrypted to an officer's certificate (CMS
AuthEnvelopedData), and the opener that reads either kind of share file."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import cms as a_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailseal.errors import EscrowError, IdentityError, MailsealError, PasswordError, UsageError
from mailseal.escrow.officer import (
    open_share_file,
    open_share_with_key,
    seal_share_to_certificate,
    share_protection,
)
from mailseal.escrow.protect import KdfCost, open_share, seal_share
from mailseal.escrow.threshold import (
    EscrowSet,
    Share,
    _base,
    create_escrow,
    open_record,
    partial_decrypt,
    seal_record,
)
from mailseal.pki.testpki import TestPKI

from ..conftest import Person

FAST = KdfCost(1, 8 << 20)  # tests only: the default costs 256 MiB per derivation
OFFICER_KEYS = ["rsa3072", "p256", "p384"]


@pytest.fixture(scope="module")
def officer(person: Callable[..., Person]) -> Callable[[str], Person]:
    """``officer("p256")``: an encryption-only officer certificate of that key type."""

    def make(key_type: str, who: str = "ann") -> Person:
        return person(
            f"{who}-{key_type}@officers.example.org", key_type=key_type, usage="encryption"
        )

    return make


@pytest.fixture(scope="module")
def escrow_set() -> tuple[EscrowSet, list[Share]]:
    return create_escrow(2, 3)


def _doc(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    assert isinstance(doc, dict)
    return doc


def _file(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize("key_type", OFFICER_KEYS)
def test_round_trip(
    key_type: str, officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann = officer(key_type)
    data = seal_share_to_certificate(escrow, shares[1], ann.cert)
    doc = _doc(data)
    assert doc["protection"] == "certificate" and share_protection(data) == "certificate"
    assert doc["index"] == 2 and doc["set_id"] == escrow.set_id.hex()
    assert doc["threshold"] == 2 and doc["officers"] == 3
    assert doc["certificate"] == {
        "sha256": ann.cert.fingerprint(hashes.SHA256()).hex(),
        "subject": ann.cert.subject.rfc4514_string(),
    }
    assert shares[1].value.hex() not in data.decode()
    # the encrypted part is AES-256-GCM AuthEnvelopedData, one recipient: the officer
    ci = a_cms.ContentInfo.load(base64.b64decode(doc["envelope"]))
    assert ci["content_type"].native == "authenticated_enveloped_data"
    eci = ci["content"]["auth_encrypted_content_info"]
    assert eci["content_encryption_algorithm"]["algorithm"].native == "aes256_gcm"
    (ri,) = ci["content"]["recipient_infos"]
    assert ri.name == ("ktri" if key_type.startswith("rsa") else "kari")

    key = ann.ident.key
    assert open_share_with_key(data, key, ann.cert) == shares[1]
    assert open_share_with_key(data, key, None) == shares[1]  # the certificate in the file
    assert open_share_with_key(data, key, ann.cert, escrow) == shares[1]
    assert open_share_file(data, key=key, escrow=escrow) == shares[1]
    assert open_share_file(data, key=key, certificate=ann.cert) == shares[1]


def test_recovered_shares_open_a_record(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann, bo = officer("p256"), officer("p384", "bo")
    files = [
        seal_share_to_certificate(escrow, shares[0], ann.cert),
        seal_share_to_certificate(escrow, shares[2], bo.cert),
    ]
    opened = [
        open_share_file(files[0], key=ann.ident.key, escrow=escrow),
        open_share_file(files[1], key=bo.ident.key, escrow=escrow),
    ]
    record = seal_record(escrow, b"key-1", b"the archived key")
    partials = [partial_decrypt(escrow, s, record) for s in opened]
    assert open_record(escrow, b"key-1", record, partials) == b"the archived key"


def test_wrong_key_and_another_officers_file(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann, bo = officer("rsa3072"), officer("p256", "bo")
    ann_ec, bo_ec = officer("p384"), officer("p384", "bo")
    for owner, other in ((ann, bo), (ann_ec, bo_ec)):
        data = seal_share_to_certificate(escrow, shares[0], owner.cert)
        # the right certificate with another key
        with pytest.raises(EscrowError, match="private key given does not open"):
            open_share_with_key(data, other.ident.key, owner.cert)
        # the key alone: the certificate in the file names someone else
        with pytest.raises(EscrowError, match="private key given does not open"):
            open_share_with_key(data, other.ident.key, None)
        # another officer's file given with this officer's certificate and key
        with pytest.raises(EscrowError, match=r"is encrypted to .*, not to"):
            open_share_with_key(data, other.ident.key, other.cert)
        with pytest.raises(EscrowError, match=r"is encrypted to .*, not to"):
            open_share_file(data, key=other.ident.key, certificate=other.cert)


def test_relabelled_files_are_refused(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann = officer("p256")
    key = ann.ident.key
    doc = _doc(seal_share_to_certificate(escrow, shares[0], ann.cert))
    other_set, _ = create_escrow(2, 3)
    relabels: list[dict[str, Any]] = [
        {"index": 3},  # claim to be officer 3
        {"set_id": other_set.set_id.hex()},
        {"public_key": other_set.public_key.hex()},
        {"threshold": 3},
        {"certificate": {**doc["certificate"], "subject": "CN=somebody else"}},
    ]
    for change in relabels:
        with pytest.raises(EscrowError, match="relabelled"):
            open_share_with_key(_file({**doc, **change}), key, ann.cert)
    # the envelope of officer 2's file (to the same certificate) in officer 1's file
    doc2 = _doc(seal_share_to_certificate(escrow, shares[1], ann.cert))
    with pytest.raises(EscrowError, match="relabelled"):
        open_share_with_key(_file({**doc, "envelope": doc2["envelope"]}), key, ann.cert)
    # a header naming another certificate is caught before decrypting
    bo = officer("p256", "bo")
    sha = bo.cert.fingerprint(hashes.SHA256()).hex()
    moved = {**doc, "certificate": {**doc["certificate"], "sha256": sha}}
    with pytest.raises(EscrowError, match="not to"):
        open_share_with_key(_file(moved), key, ann.cert)
    with pytest.raises(EscrowError, match="not the one it names"):
        open_share_with_key(_file(moved), key, None)


def test_escrow_mismatch(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann = officer("p256")
    key = ann.ident.key
    data = seal_share_to_certificate(escrow, shares[0], ann.cert)
    other, other_shares = create_escrow(2, 3)
    with pytest.raises(EscrowError, match="another escrow set"):
        open_share_with_key(data, key, ann.cert, other)
    with pytest.raises(EscrowError, match="another escrow set"):
        open_share_file(data, key=key, escrow=other)
    same_id = EscrowSet(escrow.set_id, other.threshold, other.public_key, other.verification)
    with pytest.raises(EscrowError, match="not its public key"):
        open_share_with_key(data, key, ann.cert, same_id)
    # sealing checks the share against the set too
    with pytest.raises(EscrowError, match="another escrow set"):
        seal_share_to_certificate(escrow, other_shares[0], ann.cert)
    forged_share = Share(escrow.set_id, 1, other_shares[0].value)
    with pytest.raises(EscrowError, match="verification point"):
        seal_share_to_certificate(escrow, forged_share, ann.cert)


def test_a_share_forged_to_the_officers_certificate_is_caught_by_the_escrow_set(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    """Anyone with the officer's (public) certificate can encrypt a share file to it; only the
    set's verification point tells a forged share from the real one."""
    escrow, _ = escrow_set
    ann = officer("p256")
    fake = Share(escrow.set_id, 1, (12345).to_bytes(32, "little"))
    lookalike = EscrowSet(
        escrow.set_id,
        escrow.threshold,
        escrow.public_key,
        (_base(12345), *escrow.verification[1:]),
    )
    data = seal_share_to_certificate(lookalike, fake, ann.cert)
    assert open_share_with_key(data, ann.ident.key, ann.cert) == fake  # no set: no check
    with pytest.raises(EscrowError, match="verification point"):
        open_share_with_key(data, ann.ident.key, ann.cert, escrow)
    with pytest.raises(EscrowError, match="verification point"):
        open_share_file(data, key=ann.ident.key, escrow=escrow)


def test_unusable_certificates_are_refused_at_seal(
    ca: TestPKI,
    person: Callable[..., Person],
    escrow_set: tuple[EscrowSet, list[Share]],
) -> None:
    escrow, shares = escrow_set
    now = dt.datetime.now(dt.UTC)
    expired = ca.user(
        "expired@officers.example.org",
        key_type="p256",
        usage="encryption",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    with pytest.raises(IdentityError, match="expired"):
        seal_share_to_certificate(escrow, shares[0], expired.cert)
    future = ca.user(
        "future@officers.example.org",
        key_type="p256",
        usage="encryption",
        not_before=now + dt.timedelta(days=1),
    )
    with pytest.raises(IdentityError, match="not valid yet"):
        seal_share_to_certificate(escrow, shares[0], future.cert)
    sign_only = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    rsa_signer = person("signer-rsa@officers.example.org", key_usage=sign_only)
    with pytest.raises(IdentityError, match="keyEncipherment"):
        seal_share_to_certificate(escrow, shares[0], rsa_signer.cert)
    ec_signer = person("signer-ec@officers.example.org", key_type="p256", key_usage=sign_only)
    with pytest.raises(IdentityError, match="keyAgreement"):
        seal_share_to_certificate(escrow, shares[0], ec_signer.cert)
    ed = person("signer-ed@officers.example.org", key_type="ed25519", usage="signing")
    with pytest.raises(IdentityError):
        seal_share_to_certificate(escrow, shares[0], ed.cert)


def test_weak_rsa_certificate_is_refused(
    weak_rsa: Person, escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    with pytest.raises(MailsealError, match="1024-bit"):
        seal_share_to_certificate(escrow, shares[0], weak_rsa.cert)


def test_junk_truncated_and_hostile_files(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann = officer("p256")
    key = ann.ident.key
    data = seal_share_to_certificate(escrow, shares[0], ann.cert)
    doc = _doc(data)
    env = base64.b64decode(doc["envelope"])
    b64 = base64.b64encode
    junk: list[bytes] = [
        b"",
        b"{}",
        b"[1]",
        b"null",
        b"not json",
        b"\xff\xfe\x00",
        b"[" * 60_000,
        b"x" * 100_000,
        b'{"format": 1}',
        data[: len(data) // 2],
        data[:-3],
    ]
    changes: list[dict[str, Any]] = [
        {"version": 2},
        {"version": True},
        {"protection": "smartcard"},
        {"index": "1"},
        {"index": True},
        {"index": 0},
        {"index": 10**400},
        {"threshold": 1},
        {"officers": 65},
        {"set_id": "zz" * 16},
        {"set_id": 7},
        {"set_id": " ".join(["00"] * 11)},  # 32 characters, 11 bytes
        {"public_key": "00"},
        {"certificate": ["sha256"]},
        {"certificate": {"sha256": "00", "subject": "x"}},
        {"certificate": {**doc["certificate"], "extra": 1}},
        {"certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
        {"certificate_pem": 5},
        {"envelope": None},
        {"envelope": "not base64!"},
        {"envelope": b64(b"\x30\x03\x02\x01\x00").decode()},
        {"envelope": b64(env[: len(env) // 2]).decode()},
        {"envelope": b64(env[:-1]).decode()},
        {"envelope": b64(env + b"\x00").decode()},
        {"envelope": b64(env[:-1] + bytes([env[-1] ^ 1])).decode()},  # the GCM tag
        {"envelope": b64(b"\x30\x80" * 5000).decode()},
    ]
    for change in changes:
        junk.append(_file({**doc, **change}))
    missing = dict(doc)
    del missing["index"]
    junk.append(_file(missing))
    for bad in junk:
        with pytest.raises(EscrowError):
            open_share_with_key(bad, key, None)
        with pytest.raises((EscrowError, UsageError)):
            open_share_file(bad, key=key, passphrase=b"a passphrase")


def test_damaged_envelopes_give_the_share_or_an_escrow_error(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    """Every single-bit change of the CMS is refused with an EscrowError, or (in the fields
    the CMS reader does not hold to a value: versions, outer lengths, the content type)
    still gives the genuine share; never another share, never another exception."""
    escrow, shares = escrow_set
    for key_type in ("rsa3072", "p256"):
        ann = officer(key_type)
        doc = _doc(seal_share_to_certificate(escrow, shares[0], ann.cert))
        env = base64.b64decode(doc["envelope"])
        refused = 0
        for at in range(len(env)):
            for flip in (0x01, 0x80):
                damaged = env[:at] + bytes([env[at] ^ flip]) + env[at + 1 :]
                bad = _file({**doc, "envelope": base64.b64encode(damaged).decode()})
                try:
                    got = open_share_with_key(bad, ann.ident.key, ann.cert)
                except EscrowError:
                    refused += 1
                    continue
                assert got == shares[0], f"byte {at} ^ {flip:#x} changed the share"
        assert refused > 0.9 * 2 * len(env)


def test_dispatcher_asks_for_the_right_secret(
    officer: Callable[..., Person], escrow_set: tuple[EscrowSet, list[Share]]
) -> None:
    escrow, shares = escrow_set
    ann = officer("p256")
    by_cert = seal_share_to_certificate(escrow, shares[0], ann.cert)
    by_pass = seal_share(escrow, shares[1], b"officer two passphrase", cost=FAST)
    assert share_protection(by_pass) == "passphrase"

    with pytest.raises(UsageError, match="private key, not a passphrase"):
        open_share_file(by_cert, passphrase=b"officer two passphrase")
    with pytest.raises(UsageError, match="encrypted to the certificate of"):
        open_share_file(by_cert)
    with pytest.raises(UsageError, match="passphrase, not a private key"):
        open_share_file(by_pass, key=ann.ident.key)
    with pytest.raises(UsageError, match="protected by a passphrase"):
        open_share_file(by_pass)
    with pytest.raises(UsageError, match="protected by a passphrase"):
        open_share_with_key(by_pass, ann.ident.key, ann.cert)

    # the right secret opens each kind (a secret of the other kind is not used)
    assert open_share_file(by_pass, passphrase=b"officer two passphrase") == shares[1]
    assert (
        open_share_file(
            by_pass, passphrase=b"officer two passphrase", key=ann.ident.key, escrow=escrow
        )
        == shares[1]
    )
    assert open_share_file(by_cert, key=ann.ident.key, passphrase=b"unused") == shares[0]
    with pytest.raises(PasswordError, match="wrong passphrase"):
        open_share_file(by_pass, passphrase=b"a guessed passphrase")
    other, _ = create_escrow(2, 3)
    with pytest.raises(EscrowError, match="another escrow set"):
        open_share_file(by_pass, passphrase=b"officer two passphrase", escrow=other)

    # the passphrase opener refuses a certificate file with an EscrowError
    with pytest.raises(EscrowError):
        open_share(by_cert, b"officer two passphrase")
    unknown = _file({**_doc(by_cert), "protection": "smartcard"})
    with pytest.raises(EscrowError, match="unknown protection"):
        open_share_file(unknown, key=ann.ident.key)
    with pytest.raises(EscrowError, match="unknown protection"):
        share_protection(unknown)
