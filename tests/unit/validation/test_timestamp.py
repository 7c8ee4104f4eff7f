"""mailseal.validation.timestamp: an RFC 3161 timestamp token in a SignerInfo proves when it
was signed, so a certificate that has expired since is "valid when signed"; a token that does not
verify (wrong imprint, a TSA without timeStamping, a broken token signature) makes the signature
not valid, never silently ignored."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import pytest
from asn1crypto import algos as a_algos
from asn1crypto import cms as a_cms
from asn1crypto import core as a_core
from asn1crypto import tsp as a_tsp
from asn1crypto import x509 as a_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

import mailseal
from mailseal.cms.inspect import DEFAULT_LIMITS, _parse_fast, _parse_signer_info, parse_signed_data
from mailseal.keys.identity import Identity
from mailseal.keys.software import SoftwareKey
from mailseal.pki.testpki import Issued, TestPKI
from mailseal.validation.timestamp import check_timestamp

from .._support import content_info, replace_cms

Status = mailseal.Status
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
HOURS = dt.timedelta(hours=1)
SIGNED_AT = NOW - 5 * DAY
TS_TOKEN = "1.2.840.113549.1.9.16.2.14"


def _mail(sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@example.org\r\nSubject: timestamp\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    ).encode()


@dataclass(frozen=True)
class Setup:
    pki: TestPKI
    tsa: Issued
    not_a_tsa: Issued
    expired: Issued
    current: Issued


@pytest.fixture(scope="module")
def setup() -> Setup:
    pki = TestPKI.create("Timestamp Test", now=NOW - 30 * DAY, days=60)
    tsa = pki.user(
        "tsa@example.org",
        eku=[ExtendedKeyUsageOID.TIME_STAMPING],
        eku_critical=True,
        usage="signing",
        name="TSA",
    )
    not_a_tsa = pki.user("fake-tsa@example.org", usage="signing", name="Not a TSA")
    expired = pki.user(
        "old@example.org", usage="signing", not_before=NOW - 10 * DAY, not_after=NOW - DAY
    )
    current = pki.user("new@example.org", usage="signing")
    return Setup(pki, tsa, not_a_tsa, expired, current)


def _sign(pki: TestPKI, who: Issued, email: str) -> bytes:
    ident = Identity(who.cert, SoftwareKey(who.key), pki.chain)
    return mailseal.sign(_mail(email), ident, when=SIGNED_AT)


def _token(
    tsa: Issued,
    pki: TestPKI,
    imprint_of: bytes,
    *,
    gen_time: dt.datetime = SIGNED_AT,
    break_signature: bool = False,
    ess: str = "v2",
    ess_cert: bytes | None = None,
) -> a_cms.ContentInfo:
    """A timestamp token (ContentInfo/SignedData over a TSTInfo) by ``tsa``."""
    tst = a_tsp.TSTInfo(
        {
            "version": "v1",
            "policy": "1.3.6.1.4.1.99999.1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(imprint_of).digest(),
            },
            "serial_number": 42,
            "gen_time": gen_time,
        }
    )
    tst_der = tst.dump()
    bound = ess_cert if ess_cert is not None else tsa.cert.public_bytes(Encoding.DER)
    ess_attrs = {
        "v2": [
            {
                "type": "signing_certificate_v2",
                "values": [{"certs": [{"cert_hash": hashlib.sha256(bound).digest()}]}],
            }
        ],
        "v1": [
            {
                "type": "signing_certificate",
                "values": [{"certs": [{"cert_hash": hashlib.sha1(bound).digest()}]}],
            }
        ],
        "none": [],
    }[ess]
    attrs = a_cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
            *ess_attrs,
        ]
    )
    key = tsa.key
    assert isinstance(key, rsa.RSAPrivateKey)
    sig = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    if break_signature:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    tsa_cert = a_x509.Certificate.load(tsa.cert.public_bytes(Encoding.DER))
    certs = [tsa_cert, *(a_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in pki.chain)]
    si = a_cms.SignerInfo(
        {
            "version": "v1",
            "sid": a_cms.SignerIdentifier(
                "issuer_and_serial_number",
                {"issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number},
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": a_algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            "signature": sig,
        }
    )
    sd = a_cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": a_core.ParsableOctetString(tst_der),
            },
            "certificates": certs,
            "signer_infos": [si],
        }
    )
    return a_cms.ContentInfo({"content_type": "signed_data", "content": sd})


def _signature_value(signed: bytes) -> bytes:
    return bytes(content_info(signed)["content"]["signer_infos"][0]["signature"].native)


def _with_token(signed: bytes, *tokens: a_cms.ContentInfo) -> bytes:
    """The message with ``tokens`` as the first SignerInfo's id-aa-timeStampToken values."""
    ci = content_info(signed)
    si = ci["content"]["signer_infos"][0]
    values = [a_cms.ContentInfo.load(t.dump()) for t in tokens]
    si["unsigned_attrs"] = a_cms.CMSAttributes([{"type": TS_TOKEN, "values": values}])
    # dump() re-encodes the mutated path only (force=True would re-encode every nested
    # structure, which takes minutes for a token inside a SignerInfo)
    return replace_cms(signed, ci.dump())


def _only(result: mailseal.VerifyResult) -> mailseal.SignerVerdict:
    assert len(result.signers) == 1
    return result.signers[0]


def _trust(setup: Setup) -> mailseal.Trust:
    return mailseal.Trust([setup.pki.root.cert])


# -- the happy path -------------------------------------------------------------------------------
def test_expired_signer_with_valid_token_is_valid_when_signed(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    stamped = _with_token(signed, _token(setup.tsa, setup.pki, _signature_value(signed)))
    signer = _only(mailseal.verify(stamped, trust=_trust(setup)))
    assert signer.valid, signer.describe()
    assert signer.validation is not None
    assert signer.validation.time_source == "timestamp"
    assert signer.validation.time == SIGNED_AT
    assert "valid when signed (timestamp)" in signer.describe()
    assert any(
        n.startswith("valid when signed: timestamp by") and "CN=TSA" in n for n in signer.notes
    ), signer.notes


def test_expired_signer_without_token_is_expired(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    assert mailseal.verify(signed, trust=_trust(setup)).status is Status.EXPIRED


def test_token_on_a_current_certificate_adds_a_note(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    stamped = _with_token(signed, _token(setup.tsa, setup.pki, _signature_value(signed)))
    signer = _only(mailseal.verify(stamped, trust=_trust(setup)))
    assert signer.valid, signer.describe()
    assert signer.validation is not None
    assert signer.validation.time_source == "now"
    assert any(n.startswith("timestamp by") and SIGNED_AT.isoformat() in n for n in signer.notes)


def test_genuine_token_outside_the_validity_does_not_help(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    token = _token(setup.tsa, setup.pki, _signature_value(signed), gen_time=NOW - 12 * HOURS)
    signer = _only(mailseal.verify(_with_token(signed, token), trust=_trust(setup)))
    assert signer.status is Status.EXPIRED
    assert any("timestamp time" in n and "either" in n for n in signer.notes)


# -- tokens that do not verify --------------------------------------------------------------------
def test_token_whose_imprint_does_not_match_is_not_valid(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    stamped = _with_token(signed, _token(setup.tsa, setup.pki, b"some other signature"))
    signer = _only(mailseal.verify(stamped, trust=_trust(setup)))
    assert not signer.valid
    assert signer.status is Status.TAMPERED
    assert any(
        "timestamp token does not match this signature" in p.message for p in signer.problems
    ), signer.problems


def test_token_from_a_tsa_without_time_stamping_is_not_valid(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    stamped = _with_token(signed, _token(setup.not_a_tsa, setup.pki, _signature_value(signed)))
    signer = _only(mailseal.verify(stamped, trust=_trust(setup)))
    assert not signer.valid
    assert any(
        p.code is Status.WRONG_PURPOSE and "timeStamping" in p.message for p in signer.problems
    ), signer.problems


def test_token_with_a_broken_signature_is_not_valid(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    token = _token(setup.tsa, setup.pki, _signature_value(signed), break_signature=True)
    signer = _only(mailseal.verify(_with_token(signed, token), trust=_trust(setup)))
    assert not signer.valid
    assert any("timestamp token signature" in p.message for p in signer.problems)


def test_token_from_an_untrusted_tsa_is_not_valid(setup: Setup) -> None:
    other = TestPKI.create("Elsewhere", now=NOW - 30 * DAY, days=60)
    tsa = other.user(
        "tsa@elsewhere.example", eku=[ExtendedKeyUsageOID.TIME_STAMPING], eku_critical=True
    )
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    stamped = _with_token(signed, _token(tsa, other, _signature_value(signed)))
    signer = _only(mailseal.verify(stamped, trust=_trust(setup)))
    assert not signer.valid
    assert any("TSA" in p.message and "not trusted" in p.message for p in signer.problems)


def test_token_that_is_not_a_tstinfo_is_not_valid(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    ci = content_info(signed)  # a SignedData over mail content, not a TSTInfo
    result = check_timestamp(ci.dump(), _signature_value(signed), _trust(setup))
    assert not result.valid
    assert any("TSTInfo" in p.message for p in result.problems)


# -- parsing --------------------------------------------------------------------------------------
def test_both_parsers_expose_the_token(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    token = _token(setup.tsa, setup.pki, _signature_value(signed))
    stamped = _with_token(signed, token)
    ci = content_info(stamped)
    fast = _parse_fast(ci.dump(), DEFAULT_LIMITS).signer_infos[0]  # no fallback
    slow = _parse_signer_info(0, ci["content"]["signer_infos"][0])
    assert fast.has_timestamp and slow.has_timestamp
    assert fast.timestamp_token == slow.timestamp_token == token.dump()
    assert fast.timestamp_tokens == slow.timestamp_tokens == (token.dump(),)
    plain = parse_signed_data(content_info(signed).dump()).signer_infos[0]
    assert plain.timestamp_token is None and not plain.has_timestamp


# -- the ESS signingCertificate binding (RFC 3161 §2.4.1, RFC 5816) -------------------------------
def test_token_with_signing_certificate_v1_is_accepted(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    token = _token(setup.tsa, setup.pki, _signature_value(signed), ess="v1")
    signer = _only(mailseal.verify(_with_token(signed, token), trust=_trust(setup)))
    assert signer.valid, signer.describe()


def test_token_without_signing_certificate_is_not_valid(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    token = _token(setup.tsa, setup.pki, _signature_value(signed), ess="none")
    signer = _only(mailseal.verify(_with_token(signed, token), trust=_trust(setup)))
    assert signer.status is Status.TAMPERED
    assert any("signingCertificate" in p.message for p in signer.problems), signer.problems


@pytest.mark.parametrize("ess", ["v1", "v2"])
def test_token_naming_another_tsa_certificate_is_not_valid(setup: Setup, ess: str) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    other = setup.not_a_tsa.cert.public_bytes(Encoding.DER)
    token = _token(setup.tsa, setup.pki, _signature_value(signed), ess=ess, ess_cert=other)
    signer = _only(mailseal.verify(_with_token(signed, token), trust=_trust(setup)))
    assert signer.status is Status.TAMPERED
    assert any("names another TSA certificate" in p.message for p in signer.problems)


# -- several tokens -------------------------------------------------------------------------------
def test_earliest_of_several_tokens_is_the_proven_time(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    value = _signature_value(signed)
    later = _token(setup.tsa, setup.pki, value, gen_time=SIGNED_AT + HOURS)
    earlier = _token(setup.tsa, setup.pki, value, gen_time=SIGNED_AT)
    signer = _only(mailseal.verify(_with_token(signed, later, earlier), trust=_trust(setup)))
    assert signer.valid, signer.describe()
    assert signer.validation is not None
    assert signer.validation.time == SIGNED_AT


def test_one_bad_token_among_several_is_not_skipped(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    value = _signature_value(signed)
    good = _token(setup.tsa, setup.pki, value)
    bad = _token(setup.tsa, setup.pki, value, break_signature=True)
    signer = _only(mailseal.verify(_with_token(signed, good, bad), trust=_trust(setup)))
    assert not signer.valid
    assert any("timestamp token signature" in p.message for p in signer.problems)


def test_too_many_tokens_are_not_checked(setup: Setup) -> None:
    signed = _sign(setup.pki, setup.current, "new@example.org")
    token = _token(setup.tsa, setup.pki, _signature_value(signed))
    signer = _only(mailseal.verify(_with_token(signed, *[token] * 5), trust=_trust(setup)))
    assert signer.status is Status.UNSUPPORTED
    assert any("5 timestamp tokens" in p.message for p in signer.problems)


@pytest.mark.parametrize(
    ("eku", "critical"),
    [
        ([ExtendedKeyUsageOID.TIME_STAMPING], False),
        ([ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.EMAIL_PROTECTION], True),
    ],
)
def test_tsa_eku_must_be_critical_and_alone(
    setup: Setup, eku: list[object], critical: bool
) -> None:
    tsa = setup.pki.user(
        "tsa2@example.org", eku=eku, eku_critical=critical, usage="signing", name="TSA 2"
    )
    signed = _sign(setup.pki, setup.expired, "old@example.org")
    stamped = _with_token(signed, _token(tsa, setup.pki, _signature_value(signed)))
    signer = _only(mailseal.verify(stamped, trust=_trust(setup)))
    assert not signer.valid
    assert any("RFC 3161 §2.3" in p.message for p in signer.problems), signer.problems
