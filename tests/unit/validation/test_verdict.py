"""mailseal.validation (trust, verdict) through mailseal.verify: every way a signature can fail
to be valid, kept apart, and the stable JSON shape of a verdict."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable

import pytest
from asn1crypto import cms as a_cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

import mailseal
from mailseal.pki.testpki import TestPKI
from mailseal.validation.verdict import worst

from .._support import MAIL_7BIT, content_info, replace_cms, signed_parts
from ..conftest import Person

Status = mailseal.Status
NOW = dt.datetime.now(dt.UTC)


def _codes(v: mailseal.SignerVerdict) -> set[str]:
    return {p.code.value for p in v.problems}


@pytest.fixture(scope="module")
def signed(alice: Person) -> bytes:
    return mailseal.sign(MAIL_7BIT, alice.ident)


@pytest.fixture(scope="module")
def signed_opaque(alice: Person) -> bytes:
    return mailseal.sign(MAIL_7BIT, alice.ident, opaque=True)


def _rebuild(signed: bytes, **fields: object) -> bytes:
    """The message with SignedData fields replaced (asn1crypto), e.g. certificates=None."""
    ci = content_info(signed)
    sd = ci["content"]
    new = {
        "version": sd["version"],
        "digest_algorithms": sd["digest_algorithms"],
        "encap_content_info": sd["encap_content_info"],
        "certificates": sd["certificates"],
        "signer_infos": sd["signer_infos"],
    }
    new.update(fields)
    new = {k: v for k, v in new.items() if v is not None}
    der = a_cms.ContentInfo(
        {"content_type": "signed_data", "content": a_cms.SignedData(new)}
    ).dump()
    return replace_cms(signed, der)


# -- valid ----------------------------------------------------------------------------------------
def test_valid(signed: bytes, trust: mailseal.Trust, alice: Person, ca: TestPKI) -> None:
    result = mailseal.verify(signed, trust=trust)
    assert result.status is Status.VALID and result.valid and not result.tampered
    (v,) = result.signers
    assert v.valid and v.intact and v.trusted and v.problems == ()
    assert v.certificate == alice.cert
    assert v.path == (alice.cert, ca.chain[0], ca.root.cert)
    assert v.addresses == ("alice@example.org",)
    assert v.address_matches_from is True
    assert result.from_addresses == ("alice@example.org",)
    assert v.describe().startswith("valid signature by alice@example.org")


def test_a_list_of_anchors_works_like_trust(signed: bytes, ca: TestPKI) -> None:
    assert mailseal.verify(signed, trust=[ca.root.cert]).valid


# -- tampered and untrusted, kept apart -----------------------------------------------------------
def test_tampered_content(signed: bytes, trust: mailseal.Trust) -> None:
    changed = signed.replace(b"Hello Bob.", b"Hello Rob.")
    assert changed != signed
    result = mailseal.verify(changed, trust=trust)
    assert result.status is Status.TAMPERED and result.tampered and not result.valid
    (v,) = result.signers
    assert not v.intact
    assert v.trusted  # the certificate is still fine
    assert _codes(v) == {"tampered"}
    assert "does not match" in v.problems[0].message


def test_tampered_opaque_content(signed_opaque: bytes, trust: mailseal.Trust) -> None:
    der = base64.b64decode(b"".join(signed_opaque.split(b"\r\n\r\n", 1)[1].split()))
    assert der.count(b"Hello Bob.") == 1
    changed = replace_cms(signed_opaque, der.replace(b"Hello Bob.", b"Hello Rob."))
    result = mailseal.verify(changed, trust=trust)
    assert result.status is Status.TAMPERED
    assert result.signers[0].trusted and not result.signers[0].intact


def test_tampered_signed_attributes(signed: bytes, trust: mailseal.Trust) -> None:
    ci = content_info(signed)
    der = ci.dump()
    (si,) = ci["content"]["signer_infos"]
    # change one byte of the signing time: the signature over the attributes breaks
    stime = next(a for a in si["signed_attrs"] if a["type"].native == "signing_time")
    raw = stime.dump()
    assert der.count(raw) == 1
    forged = raw[:-3] + bytes([raw[-3] ^ 0x01]) + raw[-2:]
    result = mailseal.verify(replace_cms(signed, der.replace(raw, forged)), trust=trust)
    assert result.status is Status.TAMPERED
    assert "does not verify" in result.signers[0].problems[0].message


def test_tampered_signature_value(signed: bytes, trust: mailseal.Trust) -> None:
    ci = content_info(signed)
    der = ci.dump()
    (si,) = ci["content"]["signer_infos"]
    sig = si["signature"].native
    assert der.endswith(sig)
    result = mailseal.verify(replace_cms(signed, der[:-1] + bytes([der[-1] ^ 0xFF])), trust=trust)
    assert result.status is Status.TAMPERED


def test_untrusted(signed: bytes, other_ca: TestPKI) -> None:
    result = mailseal.verify(signed, trust=[other_ca.root.cert])
    assert result.status is Status.UNTRUSTED and not result.valid and not result.tampered
    (v,) = result.signers
    assert v.intact and not v.trusted
    assert _codes(v) == {"untrusted"}


def test_no_trust_anchor_at_all(signed: bytes) -> None:
    result = mailseal.verify(signed)
    (v,) = result.signers
    assert result.status is Status.UNTRUSTED
    assert v.intact and not v.trusted
    assert "no trust anchor" in v.problems[0].message


def test_tampered_and_untrusted(signed: bytes, other_ca: TestPKI) -> None:
    result = mailseal.verify(
        signed.replace(b"Hello Bob.", b"Hello Rob."), trust=[other_ca.root.cert]
    )
    (v,) = result.signers
    assert result.status is Status.TAMPERED  # the most severe first
    assert not v.intact and not v.trusted
    assert _codes(v) == {"tampered", "untrusted"}


def test_signer_issued_directly_by_the_anchor() -> None:
    """No intermediate: the leaf is issued by the trust anchor itself (ECDSA CA here)."""
    pki = TestPKI.create("Flat", with_intermediate=False, key_type="p256")
    user = pki.user("flat@example.org", key_type="p256")
    ident = mailseal.load_identity(user.cert_pem, user.key_pem)
    msg = MAIL_7BIT.replace(b"alice@", b"flat@")
    assert mailseal.verify(mailseal.sign(msg, ident), trust=[pki.root.cert]).valid


# -- purpose --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "extended key usage"),
        ({"eku": [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]}, "emailProt"),
        ({"usage": "encryption"}, "key usage"),
    ],
    ids=["serverAuth", "clientAuth+codeSigning", "keyEncipherment-only"],
)
def test_wrong_purpose(
    person: Callable[..., Person], trust: mailseal.Trust, kwargs: dict, fragment: str
) -> None:
    p = person("purpose@example.org", **kwargs)
    result = mailseal.verify(
        mailseal.sign(MAIL_7BIT.replace(b"alice@", b"purpose@"), p.ident), trust=trust
    )
    assert result.status is Status.WRONG_PURPOSE
    (v,) = result.signers
    assert v.intact and not v.trusted
    assert _codes(v) == {"wrong-purpose"}
    assert fragment in v.problems[0].message


def test_any_extended_key_usage(person: Callable[..., Person], ca: TestPKI) -> None:
    p = person("anyeku@example.org", eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    signed = mailseal.sign(MAIL_7BIT.replace(b"alice@", b"anyeku@"), p.ident)
    assert mailseal.verify(signed, trust=[ca.root.cert]).status is Status.WRONG_PURPOSE
    assert mailseal.verify(signed, trust=mailseal.Trust([ca.root.cert], allow_any_eku=True)).valid


def test_no_extended_key_usage_is_unrestricted(
    person: Callable[..., Person], trust: mailseal.Trust
) -> None:
    p = person("noeku@example.org", eku=None)
    signed = mailseal.sign(MAIL_7BIT.replace(b"alice@", b"noeku@"), p.ident)
    assert mailseal.verify(signed, trust=trust).valid


# -- address --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("from_value", "matches"),
    [
        (b"Mallory <mallory@example.org>", False),
        (b"alice@example.com", False),
        (b"Alice@example.org", False),  # the local part is compared exactly
        (b"Alice <alice@EXAMPLE.org>", True),  # the domain is not
        (b"alice@example.org, mallory@example.org", True),
    ],
)
def test_address_binding(
    signed: bytes, trust: mailseal.Trust, ca: TestPKI, from_value: bytes, matches: bool
) -> None:
    changed = signed.replace(b"From: Alice <alice@example.org>", b"From: " + from_value)
    result = mailseal.verify(changed, trust=trust)
    (v,) = result.signers
    assert v.intact and v.trusted  # From is outside the signature
    assert v.address_matches_from is matches
    if matches:
        assert result.valid
    else:
        assert result.status is Status.ADDRESS_MISMATCH
        assert _codes(v) == {"address-mismatch"}
        unchecked = mailseal.verify(
            changed, trust=mailseal.Trust([ca.root.cert], check_address=False)
        )
        assert unchecked.valid
        assert unchecked.signers[0].address_matches_from is None


def test_no_from_header_no_address_check(alice: Person, trust: mailseal.Trust) -> None:
    result = mailseal.verify(
        mailseal.sign(b"Content-Type: text/plain\r\n\r\nhi\r\n", alice.ident), trust=trust
    )
    assert result.valid
    assert result.signers[0].address_matches_from is None
    assert result.from_addresses == ()


# -- validity period ------------------------------------------------------------------------------
def test_expired_signer(person: Callable[..., Person], trust: mailseal.Trust) -> None:
    p = person(
        "old@example.org",
        not_before=NOW - dt.timedelta(days=10),
        not_after=NOW - dt.timedelta(days=1),
    )
    signed = mailseal.sign(MAIL_7BIT.replace(b"alice@", b"old@"), p.ident)
    result = mailseal.verify(signed, trust=trust)
    assert result.status is Status.EXPIRED
    (v,) = result.signers
    assert v.intact and not v.trusted
    assert _codes(v) == {"expired"}


def test_validation_at_a_point_in_time() -> None:
    """Trust(at=...): the same expired signer is fine when judged at a time it was valid."""
    past = TestPKI.create("Past", now=NOW - dt.timedelta(days=20), days=30, key_type="p256")
    user = past.user(
        "old@example.org",
        key_type="p256",
        not_before=NOW - dt.timedelta(days=10),
        not_after=NOW - dt.timedelta(days=1),
    )
    ident = mailseal.load_identity(user.cert_pem, user.key_pem, chain=past.chain)
    signed = mailseal.sign(MAIL_7BIT.replace(b"alice@", b"old@"), ident)
    assert mailseal.verify(signed, trust=[past.root.cert]).status is Status.EXPIRED
    then = mailseal.Trust([past.root.cert], at=NOW - dt.timedelta(days=5))
    assert mailseal.verify(signed, trust=then).valid
    before = mailseal.Trust([past.root.cert], at=NOW - dt.timedelta(days=15))
    assert mailseal.verify(signed, trust=before).status is Status.NOT_YET_VALID


def test_not_yet_valid_signer(person: Callable[..., Person], trust: mailseal.Trust) -> None:
    p = person(
        "future@example.org",
        not_before=NOW + dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=10),
    )
    result = mailseal.verify(
        mailseal.sign(MAIL_7BIT.replace(b"alice@", b"future@"), p.ident), trust=trust
    )
    assert result.status is Status.NOT_YET_VALID
    assert result.signers[0].intact


# -- the signer's certificate ---------------------------------------------------------------------
def test_missing_signer_certificate(signed: bytes, trust: mailseal.Trust, alice: Person) -> None:
    stripped = _rebuild(signed, certificates=None)
    assert content_info(stripped)["content"]["certificates"].native is None
    result = mailseal.verify(stripped, trust=trust)
    assert result.status is Status.SIGNER_UNKNOWN and not result.valid
    (v,) = result.signers
    assert v.certificate is None and not v.intact and not v.trusted
    assert _codes(v) == {"signer-unknown"}
    assert v.signer_id.startswith("issuer+serial")
    # supplied out of band, the signer is known again (the chain comes from the trust)
    supplied = mailseal.verify(
        stripped,
        trust=mailseal.Trust([trust.anchors[0]], intermediates=_chain(signed)),
        certificates=[alice.cert],
    )
    assert supplied.valid, supplied.to_json()


def _chain(signed: bytes) -> list:
    from cryptography import x509

    return [
        x509.load_der_x509_certificate(c.chosen.dump())
        for c in content_info(signed)["content"]["certificates"]
        if c.chosen.subject.native.get("common_name", "").endswith("Issuing CA")
    ]


def test_missing_intermediate(signed: bytes, trust: mailseal.Trust, alice: Person) -> None:
    leaf_only = [
        c
        for c in content_info(signed)["content"]["certificates"]
        if c.chosen.dump() == alice.cert.public_bytes(Encoding.DER)
    ]
    stripped = _rebuild(signed, certificates=a_cms.CertificateSet(leaf_only))
    result = mailseal.verify(stripped, trust=trust)
    assert result.status is Status.UNTRUSTED
    assert result.signers[0].intact
    with_intermediate = mailseal.Trust([trust.anchors[0]], intermediates=_chain(signed))
    assert mailseal.verify(stripped, trust=with_intermediate).valid


def test_no_signer_info_is_unsigned(signed: bytes, trust: mailseal.Trust) -> None:
    certs_only = _rebuild(signed, signer_infos=a_cms.SignerInfos([]))
    result = mailseal.verify(certs_only, trust=trust)
    assert result.status is Status.UNSIGNED
    assert not result.valid
    assert result.signers == ()


# -- weak algorithms on input ---------------------------------------------------------------------
def _hand_signed(signer: Person, chain: list, digest: str) -> bytes:
    """A detached RSA PKCS#1 v1.5 signature with a digest mailseal refuses for new output,
    built with asn1crypto so that nothing of mailseal's signing code is involved."""
    from asn1crypto import x509 as a_x509
    from cryptography.hazmat.primitives.asymmetric import padding

    entity = b"Content-Type: text/plain\r\n\r\nold mail\r\n"

    def attrs() -> a_cms.CMSAttributes:
        return a_cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["data"]},
                {"type": "message_digest", "values": [hashlib.new(digest, entity).digest()]},
                {"type": "signing_time", "values": [a_cms.Time({"utc_time": NOW})]},
            ]
        )

    to_sign = attrs().dump(force=True)
    h = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}[digest]()
    signature = signer.issued.key.sign(to_sign, padding.PKCS1v15(), h)  # type: ignore[union-attr]
    leaf = a_x509.Certificate.load(signer.cert.public_bytes(Encoding.DER))
    si = a_cms.SignerInfo(
        {
            "version": "v1",
            "sid": a_cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": a_cms.IssuerAndSerialNumber(
                        {"issuer": leaf.issuer, "serial_number": leaf.serial_number}
                    )
                }
            ),
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": attrs(),
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    certs = [leaf] + [a_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in chain]
    sd = a_cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": digest}],
            "encap_content_info": {"content_type": "data"},
            "certificates": certs,
            "signer_infos": [si],
        }
    )
    der = a_cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    return _multipart_signed(entity, der, {"sha1": "sha-1", "sha256": "sha-256"}[digest])


def _multipart_signed(entity: bytes, der: bytes, micalg: str) -> bytes:
    return (
        b"From: alice@example.org\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        b"micalg=" + micalg.encode() + b'; boundary="b"\r\n\r\n--b\r\n' + entity + b"\r\n--b\r\n"
        b"Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(der)
        + b"--b--\r\n"
    )


def test_hand_built_signature_is_valid(alice: Person, ca: TestPKI) -> None:
    """The asn1crypto-built signature below is sound: with SHA-256 it verifies."""
    assert mailseal.verify(
        _hand_signed(alice, list(ca.chain), "sha256"), trust=[ca.root.cert]
    ).valid


def test_sha1_signature_is_flagged(alice: Person, ca: TestPKI) -> None:
    signed = _hand_signed(alice, list(ca.chain), "sha1")
    result = mailseal.verify(signed, trust=[ca.root.cert])
    assert result.status is Status.WEAK_ALGORITHM
    (v,) = result.signers
    assert v.intact and v.digest_algorithm == "sha1"
    assert "weak-algorithm" in _codes(v)
    assert mailseal.verify(signed, trust=mailseal.Trust([ca.root.cert], allow_weak=True)).valid


def test_rsa_1024_signer_is_flagged(weak_rsa: Person, ca: TestPKI) -> None:
    entity = b"Content-Type: text/plain\r\n\r\nfrom a small key\r\n"
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(weak_rsa.cert, weak_rsa.issued.key, hashes.SHA256())  # type: ignore[arg-type]
        .add_certificate(ca.chain[0])
        .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )
    signed = _multipart_signed(entity, der, "sha-256").replace(b"alice@", b"weak@")
    result = mailseal.verify(signed, trust=[ca.root.cert])
    assert result.status is Status.WEAK_ALGORITHM
    assert "1024" in " ".join(p.message for p in result.signers[0].problems)
    assert mailseal.verify(signed, trust=mailseal.Trust([ca.root.cert], allow_weak=True)).valid


# -- severity order -------------------------------------------------------------------------------
def test_severity_order() -> None:
    assert worst([]) is Status.VALID
    assert worst([Status.VALID, Status.VALID]) is Status.VALID
    assert worst([Status.ADDRESS_MISMATCH, Status.UNTRUSTED, Status.TAMPERED]) is Status.TAMPERED
    assert worst([Status.EXPIRED, Status.UNTRUSTED]) is Status.UNTRUSTED
    assert worst([Status.VALID, Status.WRONG_PURPOSE]) is Status.WRONG_PURPOSE
    assert [s.value for s in Status][:3] == ["valid", "tampered", "signer-unknown"]


# -- JSON -----------------------------------------------------------------------------------------
RESULT_KEYS = {"status", "valid", "form", "from", "signers", "certificates", "notes"}
SIGNER_KEYS = {
    "index",
    "status",
    "intact",
    "trusted",
    "problems",
    "signer_id",
    "certificate",
    "path",
    "addresses",
    "address_matches_from",
    "signing_time",
    "digest_algorithm",
    "signature_algorithm",
    "capabilities",
    "encryption_key_preference",
    "notes",
    "validation",
}
CERT_KEYS = {"subject", "issuer", "serial", "not_before", "not_after", "sha256"}
VALIDATION_KEYS = {
    "time",
    "time_source",
    "revocation_mode",
    "revocation_checked",
    "revocation",
    "anchor",
    "missing_issuer",
    "policies",
    "notes",
}
EVIDENCE_KEYS = {
    "subject",
    "serial",
    "status",
    "source",
    "origin",
    "issuer",
    "this_update",
    "next_update",
    "revoked_at",
    "reason",
    "detail",
}


def _check_shape(doc: dict) -> None:
    assert set(doc) == RESULT_KEYS
    assert isinstance(doc["status"], str) and isinstance(doc["valid"], bool)
    assert doc["form"] in ("detached", "opaque")
    for c in doc["certificates"]:
        assert set(c) == CERT_KEYS
    for s in doc["signers"]:
        assert set(s) == SIGNER_KEYS
        assert isinstance(s["intact"], bool) and isinstance(s["trusted"], bool)
        for p in s["problems"]:
            assert set(p) == {"code", "message"}
            assert p["code"] in {x.value for x in Status}
        if s["certificate"] is not None:
            assert set(s["certificate"]) == CERT_KEYS
        for c in s["path"]:
            assert set(c) == CERT_KEYS
        if s["signing_time"] is not None:
            dt.datetime.fromisoformat(s["signing_time"])
        v = s["validation"]
        if v is not None:
            assert set(v) == VALIDATION_KEYS
            dt.datetime.fromisoformat(v["time"])
            assert v["revocation_mode"] in ("soft", "hard", "off")
            for e in v["revocation"]:
                assert set(e) == EVIDENCE_KEYS
                assert e["status"] in ("good", "revoked", "unknown", "not-checked")
    assert json.loads(json.dumps(doc)) == doc


def test_json_shape_valid(signed: bytes, trust: mailseal.Trust, alice: Person) -> None:
    doc = mailseal.verify(signed, trust=trust).to_json()
    _check_shape(doc)
    assert doc["status"] == "valid" and doc["valid"] is True and doc["form"] == "detached"
    assert doc["from"] == ["alice@example.org"]
    (s,) = doc["signers"]
    assert (s["intact"], s["trusted"], s["problems"]) == (True, True, [])
    assert s["certificate"]["serial"] == format(alice.cert.serial_number, "x")
    assert len(s["path"]) == 3
    assert s["digest_algorithm"] == "sha256"
    assert s["signature_algorithm"] == "RSASSA-PKCS1-v1_5"
    assert s["capabilities"][0] == "aes256-gcm"


def test_json_shape_invalid(signed: bytes, other_ca: TestPKI, trust: mailseal.Trust) -> None:
    doc = mailseal.verify(signed.replace(b"Bob.", b"Rob."), trust=[other_ca.root.cert]).to_json()
    _check_shape(doc)
    assert doc["valid"] is False and doc["status"] == "tampered"
    assert [p["code"] for p in doc["signers"][0]["problems"]] == ["tampered", "untrusted"]
    unknown = mailseal.verify(_rebuild(signed, certificates=None), trust=trust).to_json()
    _check_shape(unknown)
    assert unknown["signers"][0]["certificate"] is None
    assert unknown["signers"][0]["status"] == "signer-unknown"


def test_result_is_frozen(signed: bytes, trust: mailseal.Trust) -> None:
    import dataclasses

    result = mailseal.verify(signed, trust=trust)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = Status.TAMPERED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.signers[0].intact = False  # type: ignore[misc]


def test_trust_is_reusable(signed: bytes, trust: mailseal.Trust, other_ca: TestPKI) -> None:
    first = mailseal.verify(signed, trust=trust)
    second = mailseal.verify(signed, trust=trust)
    assert first.to_json() == second.to_json()
    assert mailseal.verify(signed, trust=[other_ca.root.cert]).status is Status.UNTRUSTED


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_verify_inside_an_event_loop(signed: bytes, ca: TestPKI) -> None:
    async def handler() -> mailseal.VerifyResult:
        return mailseal.verify(signed, trust=mailseal.Trust([ca.root.cert]))

    result = asyncio.run(handler())
    assert result.valid, result.to_json()


def test_content_is_returned_with_every_verdict(signed: bytes, other_ca: TestPKI) -> None:
    result = mailseal.verify(signed, trust=[other_ca.root.cert])
    assert result.content == signed_parts(signed)[1]
