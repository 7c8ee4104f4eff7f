"""encrypt / decrypt / seal / open at the library level (docs/encryption.md).

Algorithm choice from SMIMECapabilities and its report, the checks on recipient certificates,
the sender as a recipient of their own sealed mail, one verdict per layer for every nesting,
partially protected messages, decrypting with several identities, subjectKeyIdentifier
recipients and the streaming (BER) path. CMS structures are read back with asn1crypto,
independently of the code under test.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asn1crypto import cms as a_cms
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import mailseal
from mailseal import Recipient, Status
from mailseal.errors import (
    DecryptionError,
    IdentityError,
    NoMatchingRecipient,
    NotSMIME,
    UsageError,
)
from mailseal.mime import envelope as E
from mailseal.pki.testpki import TestPKI

from ._support import MAIL_7BIT, cms_der
from .conftest import Person

# dotted OIDs, written out here rather than imported from the code under test
AES128_CBC = "2.16.840.1.101.3.4.1.2"
AES192_CBC = "2.16.840.1.101.3.4.1.22"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
AES128_GCM = "2.16.840.1.101.3.4.1.6"
AES256_GCM = "2.16.840.1.101.3.4.1.46"
RSA_PKCS1 = "1.2.840.113549.1.1.1"
RSA_OAEP = "1.2.840.113549.1.1.7"
ENVELOPED = "1.2.840.113549.1.7.3"
AUTH_ENVELOPED = "1.2.840.113549.1.9.16.1.23"
ALL_CAPS = (AES256_GCM, AES128_GCM, AES256_CBC, AES192_CBC, AES128_CBC, RSA_OAEP)

# the entity below MAIL_7BIT's transport headers, as encrypted (canonical already)
ENTITY = MAIL_7BIT[MAIL_7BIT.index(b"Content-Type:") :]


@dataclass(frozen=True)
class Rinfo:
    kind: str
    algorithm: str
    rid: str
    serial: int | None


@dataclass(frozen=True)
class View:
    content_type: str
    cipher: str
    recipients: tuple[Rinfo, ...]
    ber: bool


def view(message: bytes) -> View:
    der = cms_der(message)
    ci = a_cms.ContentInfo.load(der)
    ctype = ci["content_type"].dotted
    env = ci["content"]
    eci = env[
        "auth_encrypted_content_info" if ctype == AUTH_ENVELOPED else "encrypted_content_info"
    ]
    out: list[Rinfo] = []
    for ri in env["recipient_infos"]:
        c = ri.chosen
        alg = c["key_encryption_algorithm"]["algorithm"].dotted
        rids = (
            [c["rid"]] if ri.name == "ktri" else [k["rid"] for k in c["recipient_encrypted_keys"]]
        )
        for rid in rids:
            serial = (
                rid.chosen["serial_number"].native
                if rid.name == "issuer_and_serial_number"
                else None
            )
            out.append(Rinfo(ri.name, alg, rid.name, serial))
    return View(
        ctype, eci["content_encryption_algorithm"]["algorithm"].dotted, tuple(out), der[1] == 0x80
    )


def encrypt_with_report(
    message: bytes, recipients: list[Any], **options: Any
) -> tuple[bytes, mailseal.EncryptionReport]:
    out = io.BytesIO()
    report = mailseal.encrypt_stream(io.BytesIO(message), out, recipients, **options)
    return out.getvalue(), report


@pytest.fixture(scope="module")
def carol(person: Callable[..., Person]) -> Person:
    """RSA, dual use."""
    return person("carol@example.org")


@pytest.fixture(scope="module")
def dora(person: Callable[..., Person]) -> Person:
    """ECDSA P-384, dual use."""
    return person("dora@example.org", key_type="p384")


# ---- algorithm choice --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "cipher", "smime_type", "kt"),
    [
        (None, AES256_GCM, AUTH_ENVELOPED, RSA_OAEP),
        (ALL_CAPS, AES256_GCM, AUTH_ENVELOPED, RSA_OAEP),
        ((AES128_GCM, AES256_CBC, RSA_OAEP), AES128_GCM, AUTH_ENVELOPED, RSA_OAEP),
        ((AES256_CBC, AES128_CBC, RSA_OAEP), AES256_CBC, ENVELOPED, RSA_OAEP),
        ((AES256_GCM, AES256_CBC), AES256_GCM, AUTH_ENVELOPED, RSA_PKCS1),
        ((AES192_CBC, AES128_CBC), AES192_CBC, ENVELOPED, RSA_PKCS1),
        ((), AES128_CBC, ENVELOPED, RSA_PKCS1),
    ],
    ids=[
        "unknown",
        "everything",
        "gcm128-only",
        "no-gcm",
        "no-oaep",
        "old-client",
        "announced-nothing",
    ],
)
def test_cipher_and_key_transport_from_capabilities(
    alice: Person, caps: tuple[str, ...] | None, cipher: str, smime_type: str, kt: str
) -> None:
    data, report = encrypt_with_report(MAIL_7BIT, [Recipient(alice.cert, capabilities=caps)])
    v = view(data)
    assert (v.content_type, v.cipher) == (smime_type, cipher)
    assert [r.algorithm for r in v.recipients] == [kt]
    assert report.smime_type == (
        "authEnveloped-data" if smime_type == AUTH_ENVELOPED else "enveloped-data"
    )
    assert report.recipients == (
        (alice.email, "RSAES-OAEP (SHA-256)" if kt == RSA_OAEP else "RSAES-PKCS1-v1_5"),
    )
    assert report.reason
    json.dumps(report.to_json())
    assert mailseal.decrypt(data, [alice.ident]).content == ENTITY


def test_unknown_capabilities_take_the_default(alice: Person) -> None:
    data, report = encrypt_with_report(MAIL_7BIT, [alice.cert])
    assert report.cipher == "aes-256-gcm" and report.smime_type == "authEnveloped-data"
    assert "default" in report.reason
    assert view(data).recipients[0].algorithm == RSA_OAEP


def test_the_weakest_recipient_sets_the_cipher_but_oaep_is_per_recipient(
    alice: Person, carol: Person, bob: Person
) -> None:
    """A CBC-only recipient pulls everyone down to CBC; PKCS#1 v1.5 only for the one who did
    not announce OAEP; the EC recipient gets ECDH whatever RSA padding was announced."""
    recipients = [
        Recipient(alice.cert),  # unknown
        Recipient(carol.cert, capabilities=(AES256_CBC, AES128_CBC)),
        Recipient(bob.cert, capabilities=(AES256_CBC,)),
    ]
    data, report = encrypt_with_report(MAIL_7BIT, recipients)
    v = view(data)
    assert v.cipher == AES256_CBC and v.content_type == ENVELOPED
    by_serial = {r.serial: r for r in v.recipients}
    assert by_serial[alice.cert.serial_number].algorithm == RSA_OAEP
    assert by_serial[carol.cert.serial_number].algorithm == RSA_PKCS1
    assert by_serial[bob.cert.serial_number].kind == "kari"
    assert dict(report.recipients) == {
        alice.email: "RSAES-OAEP (SHA-256)",
        carol.email: "RSAES-PKCS1-v1_5",
        bob.email: "ECDH key agreement",
    }
    for p in (alice, carol, bob):
        assert mailseal.decrypt(data, [p.ident]).content == ENTITY


def test_explicit_choices_win_over_capabilities(alice: Person) -> None:
    cbc_only = Recipient(alice.cert, capabilities=(AES128_CBC,))
    data, report = encrypt_with_report(
        MAIL_7BIT, [cbc_only], cipher="aes-256-gcm", key_transport="oaep"
    )
    v = view(data)
    assert (v.cipher, v.recipients[0].algorithm) == (AES256_GCM, RSA_OAEP)
    assert report.cipher == "aes-256-gcm"
    gcm_caps = Recipient(alice.cert, capabilities=ALL_CAPS)
    data, report = encrypt_with_report(MAIL_7BIT, [gcm_caps], compatible=True)
    v = view(data)
    assert (v.cipher, v.recipients[0].algorithm) == (AES256_CBC, RSA_PKCS1)
    assert "compatib" in report.reason


def test_unknown_cipher_is_a_usage_error(alice: Person) -> None:
    with pytest.raises(UsageError, match="aes-256-gcm"):
        mailseal.encrypt(MAIL_7BIT, [alice.cert], cipher="rc2-40")
    with pytest.raises(UsageError):
        mailseal.encrypt(MAIL_7BIT, [])


# ---- recipient certificates are checked first --------------------------------------------------


def _refusals(ca: TestPKI) -> dict[str, tuple[x509.Certificate, tuple[str, ...]]]:
    now = ca.now
    return {
        "expired": (
            ca.user(
                "old@example.org",
                not_before=now - dt.timedelta(days=20),
                not_after=now - dt.timedelta(days=2),
            ).cert,
            ("old@example.org", "expired on", (now - dt.timedelta(days=2)).date().isoformat()),
        ),
        "not-yet-valid": (
            ca.user(
                "future@example.org",
                not_before=now + dt.timedelta(days=2),
                not_after=now + dt.timedelta(days=20),
            ).cert,
            ("future@example.org", "not valid yet"),
        ),
        "rsa-signing-only": (
            ca.user("sig@example.org", usage="signing").cert,
            ("sig@example.org", "keyEncipherment"),
        ),
        "ec-signing-only": (
            ca.user("ecsig@example.org", key_type="p256", usage="signing").cert,
            ("ecsig@example.org", "keyAgreement"),
        ),
        "server-auth-eku": (
            ca.user("tls@example.org", eku=[ExtendedKeyUsageOID.SERVER_AUTH]).cert,
            ("tls@example.org", "emailProtection"),
        ),
        "ed25519": (
            ca.user("ed@example.org", key_type="ed25519", usage="signing").cert,
            ("ed@example.org", "Ed25519"),
        ),
    }


@pytest.fixture(scope="module")
def refusals(ca: TestPKI) -> dict[str, tuple[x509.Certificate, tuple[str, ...]]]:
    return _refusals(ca)


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not-yet-valid",
        "rsa-signing-only",
        "ec-signing-only",
        "server-auth-eku",
        "ed25519",
    ],
)
def test_unusable_recipient_is_refused_with_the_reason(
    case: str,
    refusals: dict[str, tuple[x509.Certificate, tuple[str, ...]]],
    alice: Person,
) -> None:
    cert, fragments = refusals[case]
    sink = io.BytesIO()
    with pytest.raises(IdentityError) as exc:
        mailseal.encrypt_stream(io.BytesIO(MAIL_7BIT), sink, [alice.cert, cert])
    msg = str(exc.value)
    assert msg.startswith("cannot encrypt to "), msg
    for f in fragments:
        assert f in msg, msg
    assert alice.email not in msg, "only the unusable certificate is named"
    assert sink.getvalue() == b"", "nothing is written before every certificate passed"
    with pytest.raises(IdentityError):
        mailseal.seal(MAIL_7BIT, alice.ident, [cert])


def test_small_rsa_recipient_is_refused(weak_rsa: Person) -> None:
    with pytest.raises(mailseal.MailsealError, match="2048"):
        mailseal.encrypt(MAIL_7BIT, [weak_rsa.cert])


def test_certificate_without_extended_key_usage_is_accepted(ca: TestPKI) -> None:
    issued = ca.user("plain@example.org", eku=None)
    ident = mailseal.load_identity(issued.cert_pem, issued.key_pem)
    data = mailseal.encrypt(MAIL_7BIT, [issued.cert])
    assert mailseal.decrypt(data, [ident]).content == ENTITY


def test_expired_recipient_accepted_at_a_time_it_was_valid(ca: TestPKI, refusals: Any) -> None:
    cert, _ = refusals["expired"]
    mailseal.encrypt(MAIL_7BIT, [cert], at=ca.now - dt.timedelta(days=10))


# ---- the sender reads their own sent mail ------------------------------------------------------


def test_seal_adds_the_signer_as_recipient(
    alice: Person, bob: Person, trust: mailseal.Trust
) -> None:
    sealed = mailseal.seal(MAIL_7BIT, alice.ident, [bob.cert])
    assert {r.serial for r in view(sealed).recipients} == {
        alice.cert.serial_number,
        bob.cert.serial_number,
    }
    for reader in (alice, bob):
        res = mailseal.open_message(sealed, [reader.ident], trust=trust)
        assert res.valid, res.to_json()
        assert res.layers[0].opened_by == reader.email
        assert res.content == ENTITY


def test_seal_without_self(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    sealed = mailseal.seal(MAIL_7BIT, alice.ident, [bob.cert], include_self=False)
    assert [(r.kind, r.serial) for r in view(sealed).recipients] == [
        ("kari", bob.cert.serial_number)
    ]
    with pytest.raises(NoMatchingRecipient):
        mailseal.open_message(sealed, [alice.ident], trust=trust)
    assert mailseal.open_message(sealed, [bob.ident], trust=trust).valid


def test_seal_uses_the_separate_encryption_certificate(
    person: Callable[..., Person], bob: Person, trust: mailseal.Trust
) -> None:
    """A signing-only certificate cannot receive mail: the signer's encryption certificate is
    the one added, and the signature announces it."""
    signing = person("erika@example.org", usage="signing")
    enc = person("erika@example.org", usage="encryption", name="erika-enc")
    signer = signing.ident.with_encryption_certificate(enc.cert)
    mail = MAIL_7BIT.replace(b"Alice <alice@example.org>", b"Erika <erika@example.org>")
    sealed = mailseal.seal(mail, signer, [bob.cert])
    serials = {r.serial for r in view(sealed).recipients}
    assert enc.cert.serial_number in serials
    assert signing.cert.serial_number not in serials
    res = mailseal.open_message(sealed, [enc.ident], trust=trust)
    assert res.valid, res.to_json()
    verdict = res.layers[1].verification
    assert verdict is not None and verdict.signers[0].encryption_key_preference


def test_seal_with_a_signing_only_certificate_skips_self(
    person: Callable[..., Person], bob: Person
) -> None:
    signing = person("sigonly@example.org", usage="signing")
    sealed = mailseal.seal(MAIL_7BIT, signing.ident, [bob.cert])
    assert signing.cert.serial_number not in {r.serial for r in view(sealed).recipients}


def test_encrypt_sender_is_added_once(alice: Person, carol: Person) -> None:
    data = mailseal.encrypt(MAIL_7BIT, [carol.cert], sender=alice.cert)
    assert sorted(r.serial for r in view(data).recipients) == sorted(
        [alice.cert.serial_number, carol.cert.serial_number]
    )
    data = mailseal.encrypt(MAIL_7BIT, [alice.cert, carol.cert], sender=alice.cert)
    assert len(view(data).recipients) == 2, "the sender is not added twice"


# ---- one verdict per layer ---------------------------------------------------------------------


def kinds(res: mailseal.OpenResult) -> list[str]:
    return [layer.kind for layer in res.layers]


def compress(message: bytes) -> bytes:
    out = io.BytesIO()
    E.compress_stream(io.BytesIO(message), out)
    return out.getvalue()


def test_seal_then_open(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    res = mailseal.open_message(
        mailseal.seal(MAIL_7BIT, alice.ident, [bob.cert]), [bob.ident], trust=trust
    )
    assert kinds(res) == ["encrypted", "signed"]
    enc, sig = res.layers
    assert enc.status is Status.VALID and enc.authenticated is True and enc.cipher == "aes-256-gcm"
    assert enc.opened_by == bob.email and len(enc.recipients) == 2
    assert sig.status is Status.VALID and sig.verification is not None
    assert sig.verification.signers[0].address_matches_from is True
    assert (res.status, res.signed, res.encrypted, res.authenticated) == (
        Status.VALID,
        True,
        True,
        True,
    )
    assert res.content == ENTITY
    assert b"From: Alice <alice@example.org>\r\n" in res.transport_headers
    assert b"Subject: plain\r\n" in res.transport_headers
    assert b"Content-Type" not in res.transport_headers
    j = res.to_json()
    json.dumps(j)
    assert [layer["kind"] for layer in j["layers"]] == ["encrypted", "signed"]
    assert j["layers"][0]["authenticated"] is True and "signature" in j["layers"][1]


def test_compress_then_open(trust: mailseal.Trust) -> None:
    res = mailseal.open_message(compress(MAIL_7BIT), trust=trust)
    assert kinds(res) == ["compressed"]
    assert res.status is Status.VALID
    assert (res.signed, res.encrypted, res.authenticated) == (False, False, False)
    assert res.content == ENTITY
    assert str(len(ENTITY)) in res.layers[0].summary


def test_encrypt_of_signed(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    signed = mailseal.sign(MAIL_7BIT, alice.ident)
    res = mailseal.open_message(mailseal.encrypt(signed, [bob.cert]), [bob.ident], trust=trust)
    assert kinds(res) == ["encrypted", "signed"]
    assert res.valid and res.signed and res.authenticated


def test_sign_of_encrypted(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    """Encrypt-then-sign (RFC 8551 §3.7 allows it): the signature covers the ciphertext."""
    signed = mailseal.sign(mailseal.encrypt(MAIL_7BIT, [bob.cert]), alice.ident)
    res = mailseal.open_message(signed, [bob.ident], trust=trust)
    assert kinds(res) == ["signed", "encrypted"]
    assert res.valid and res.signed and res.encrypted
    assert res.content == ENTITY


def test_three_layers(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    inner = compress(mailseal.sign(MAIL_7BIT, alice.ident, opaque=True))
    res = mailseal.open_message(
        mailseal.encrypt(inner, [bob.cert], cipher="aes-128-cbc"), [bob.ident], trust=trust
    )
    assert kinds(res) == ["encrypted", "compressed", "signed"]
    assert res.layers[0].authenticated is False and res.layers[0].cipher == "aes-128-cbc"
    assert res.valid and res.signed and res.authenticated, "the signature authenticates CBC"
    assert res.content == ENTITY


def test_unsigned_cbc_is_not_authenticated(bob: Person) -> None:
    data = mailseal.encrypt(MAIL_7BIT, [bob.cert], cipher="aes-256-cbc")
    for res in (mailseal.decrypt(data, [bob.ident]), mailseal.open_message(data, [bob.ident])):
        (layer,) = res.layers
        assert layer.kind == "encrypted" and layer.authenticated is False
        assert layer.notes, "the CBC layer carries a warning"
        assert "integrity" in layer.summary
        assert (res.encrypted, res.authenticated, res.signed) == (True, False, False)
        assert res.to_json()["layers"][0]["authenticated"] is False
    res = mailseal.decrypt(mailseal.encrypt(MAIL_7BIT, [bob.cert]), [bob.ident])
    assert res.layers[0].authenticated is True and res.authenticated and not res.signed


def test_require_authenticated(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    cbc = mailseal.encrypt(MAIL_7BIT, [bob.cert], cipher="aes-256-cbc")
    with pytest.raises(DecryptionError, match="authenticated"):
        mailseal.decrypt(cbc, [bob.ident], require_authenticated=True)
    sealed_cbc = mailseal.seal(MAIL_7BIT, alice.ident, [bob.cert], cipher="aes-256-cbc")
    with pytest.raises(DecryptionError):
        mailseal.open_message(sealed_cbc, [bob.ident], trust=trust, require_authenticated=True)
    gcm = mailseal.seal(MAIL_7BIT, alice.ident, [bob.cert])
    assert mailseal.open_message(gcm, [bob.ident], trust=trust, require_authenticated=True).valid


def test_partially_protected_wrapper(alice: Person, trust: mailseal.Trust) -> None:
    """A mailing list wraps a signed message and adds a footer: the signature protects only
    part of what is displayed."""
    signed = mailseal.sign(b"Content-Type: text/plain\r\n\r\nsigned words\r\n", alice.ident)
    wrapper = (
        b"From: Alice <alice@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        b"--outer\r\n" + signed + b"\r\n--outer\r\n"
        b"Content-Type: text/plain\r\n\r\n-- list footer, not signed\r\n--outer--\r\n"
    )
    res = mailseal.open_message(wrapper, trust=trust)
    assert res.status is Status.PARTIAL
    assert res.status.value == "partially-protected"
    assert kinds(res) == ["unprotected"]
    assert not res.valid and not res.signed and not res.authenticated
    assert "signed" in res.layers[0].summary
    assert res.to_json()["status"] == "partially-protected"


def test_encrypted_without_identity_and_plain_message(bob: Person) -> None:
    with pytest.raises(UsageError):
        mailseal.open_message(mailseal.encrypt(MAIL_7BIT, [bob.cert]))
    with pytest.raises(NotSMIME):
        mailseal.open_message(MAIL_7BIT)
    with pytest.raises(NotSMIME):
        mailseal.decrypt(mailseal.sign(MAIL_7BIT, bob.ident), [bob.ident])


# ---- decrypting with several identities --------------------------------------------------------


def test_old_key_after_renewal(ca: TestPKI, alice: Person, bob: Person) -> None:
    """Mail encrypted to last year's certificate opens with the old key given next to the new
    one, even though the old certificate has expired."""
    old_issued = ca.user(
        "alice@example.org",
        not_before=ca.now - dt.timedelta(days=400),
        not_after=ca.now - dt.timedelta(days=30),
    )
    old = mailseal.load_identity(old_issued.cert_pem, old_issued.key_pem)
    data = mailseal.encrypt(MAIL_7BIT, [old_issued.cert], at=ca.now - dt.timedelta(days=60))
    res = mailseal.decrypt(data, [bob.ident, alice.ident, old])
    assert res.content == ENTITY and res.layers[0].opened_by == "alice@example.org"
    with pytest.raises(NoMatchingRecipient) as exc:
        mailseal.decrypt(data, [alice.ident, bob.ident])
    msg = str(exc.value)
    assert format(old_issued.cert.serial_number, "x") in msg, "names the recipients"
    assert format(alice.cert.serial_number, "x") in msg and bob.email in msg, "and those tried"


def test_identity_order_does_not_matter(alice: Person, bob: Person) -> None:
    data = mailseal.encrypt(MAIL_7BIT, [bob.cert])
    for ids in ([alice.ident, bob.ident], [bob.ident, alice.ident]):
        res = mailseal.decrypt(data, ids)
        assert res.layers[0].opened_by == bob.email


# ---- subjectKeyIdentifier recipients -----------------------------------------------------------


def test_ski_recipients(alice: Person, bob: Person, dora: Person) -> None:
    data = mailseal.encrypt(MAIL_7BIT, [alice.cert, bob.cert, dora.cert], ski=True)
    rids = {r.kind: r.rid for r in view(data).recipients}
    assert rids == {"ktri": "subject_key_identifier", "kari": "r_key_id"}
    for p in (alice, bob, dora):
        res = mailseal.decrypt(data, [p.ident])
        assert res.content == ENTITY
        assert all("subjectKeyIdentifier" in r for r in res.layers[0].recipients)
        ski = p.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        assert any(ski.hex() in r for r in res.layers[0].recipients)


def test_ski_needs_the_extension(ca: TestPKI) -> None:
    cert = ca.user("noski@example.org", ski=False).cert
    with pytest.raises(IdentityError, match="subjectKeyIdentifier"):
        mailseal.encrypt(MAIL_7BIT, [cert], ski=True)
    mailseal.encrypt(MAIL_7BIT, [cert])  # issuer and serial number work


# ---- large messages: BER, streamed -------------------------------------------------------------

BIG = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: big\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
) + b"".join(
    b"line %07d: the quick brown fox jumps over the lazy dog\r\n" % i for i in range(56_000)
)


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "aes-256-cbc"])
def test_three_mib_round_trip(
    cipher: str, alice: Person, bob: Person, trust: mailseal.Trust
) -> None:
    assert len(BIG) > 3 << 20
    entity = BIG[BIG.index(b"Content-Type:") :]
    with (
        tempfile.TemporaryFile() as src,
        tempfile.TemporaryFile() as enc,
        tempfile.TemporaryFile() as dec,
    ):
        src.write(BIG)
        src.seek(0)
        report = mailseal.encrypt_stream(src, enc, [alice.cert, bob.cert], cipher=cipher)
        assert report.cipher == cipher
        enc.seek(0)
        data = enc.read()
        v = view(data)
        assert v.ber, "past 1 MiB the envelope is BER with indefinite lengths"
        assert v.cipher == (AES256_GCM if cipher.endswith("gcm") else AES256_CBC)
        for p in (alice, bob):
            enc.seek(0)
            dec.seek(0)
            dec.truncate()
            res = mailseal.decrypt_stream(enc, dec, [p.ident])
            dec.seek(0)
            assert dec.read() == entity
            assert res.layers[0].authenticated is cipher.endswith("gcm")
    sealed = mailseal.seal(BIG, alice.ident, [bob.cert], cipher=cipher)
    res = mailseal.open_message(sealed, [bob.ident], trust=trust)
    assert res.valid and res.content == entity


# -- recipients validated against trust anchors ----------------------------------------------------
def test_encrypt_with_trust_validates_every_recipient(alice: Person, ca: TestPKI) -> None:
    trust = mailseal.Trust([ca.root.cert], intermediates=ca.chain)
    sealed = mailseal.encrypt(MAIL_7BIT, [alice.cert], trust=trust)
    assert mailseal.decrypt(sealed, [alice.ident]).content

    stranger = mailseal.Trust([TestPKI.create("Stranger", with_intermediate=False).root.cert])
    with pytest.raises(IdentityError, match=r"cannot encrypt to alice@example\.org: untrusted"):
        mailseal.encrypt(MAIL_7BIT, [alice.cert], trust=stranger)


def test_seal_with_trust_validates_the_sender_too(alice: Person, ca: TestPKI) -> None:
    other = TestPKI.create("Elsewhere")
    outsider = other.user("olga@example.org", usage="dual")
    ident = mailseal.load_identity(outsider.cert_pem, outsider.key_pem, chain=other.chain)
    trust = mailseal.Trust([ca.root.cert], intermediates=ca.chain)
    # the recipient is fine; the sender (added to read the sent copy) is not trusted here
    with pytest.raises(IdentityError, match=r"olga@example\.org"):
        mailseal.seal(MAIL_7BIT, ident, [alice.cert], trust=trust)
    assert mailseal.seal(MAIL_7BIT, ident, [alice.cert], trust=trust, include_self=False)
