"""mailseal.validation.trust: revocation (CRLs, OCSP; hard, soft, off; supplied, carried in the
message, fetched through a Fetcher), point-in-time validation, the missing anchor, the
validation cache and its invalidation, and Trust.validate for a certificate alone."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest
from asn1crypto import cms as a_cms
from asn1crypto import crl as a_crl
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

import mailseal
from mailseal.errors import InputError, UsageError
from mailseal.pki.testpki import Issued
from mailseal.validation.algorithms import key_weakness
from mailseal.validation.fetch import FetchError, FetchRequest

from .._support import content_info, replace_cms
from ._revpki import CA, DAY, HOUR, NOW

Status = mailseal.Status
ROOT_CRL = "http://pki.test/root.crl"
ISSUING_CRL = "http://pki.test/issuing.crl"
OCSP_URL = "http://ocsp.pki.test/"
KEY_COMPROMISE = x509.ReasonFlags.key_compromise


def _mail(sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@example.org\r\nSubject: trust\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    ).encode()


@pytest.fixture(scope="module")
def root() -> CA:
    return CA.root()


@pytest.fixture(scope="module")
def issuing(root: CA) -> CA:
    return root.sub_ca("Revocation Test Issuing CA", crl_url=ROOT_CRL)


@pytest.fixture(scope="module")
def dave(issuing: CA) -> Issued:
    return issuing.user("dave@example.org", crl_url=ISSUING_CRL, ocsp_url=OCSP_URL)


@pytest.fixture(scope="module")
def plain(issuing: CA) -> Issued:
    """A certificate that names no CRL distribution point and no OCSP responder."""
    return issuing.user("plain@example.org")


@pytest.fixture(scope="module")
def signed(issuing: CA, dave: Issued) -> bytes:
    return mailseal.sign(_mail("dave@example.org"), issuing.identity(dave))


@pytest.fixture(scope="module")
def signed_plain(issuing: CA, plain: Issued) -> bytes:
    return mailseal.sign(_mail("plain@example.org"), issuing.identity(plain))


@pytest.fixture(scope="module")
def good_crls(root: CA, issuing: CA) -> list[bytes]:
    return [root.crl(), issuing.crl()]


def _only(result: mailseal.VerifyResult) -> mailseal.SignerVerdict:
    (signer,) = result.signers
    return signer


class FakeFetcher:
    """Answers from a table of URL -> body (or exception); records every request."""

    def __init__(self, routes: dict[str, bytes | Exception]) -> None:
        self.routes = routes
        self.requests: list[FetchRequest] = []

    def fetch(self, request: FetchRequest) -> bytes:
        self.requests.append(request)
        answer = self.routes.get(request.url, FetchError(f"cannot reach {request.url}"))
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.requests]


# -- the default: soft-fail -----------------------------------------------------------------------
def test_soft_is_the_default_and_says_revocation_was_not_checked(root: CA, signed: bytes) -> None:
    result = mailseal.verify(signed, trust=[root.cert])
    signer = _only(result)
    assert result.valid
    assert signer.validation is not None
    report = signer.validation
    assert (report.revocation_mode, report.revocation_checked) == ("soft", False)
    assert report.time_source == "now"
    assert [e.status for e in report.revocation] == ["unknown", "unknown"]
    assert signer.describe().endswith("; revocation not checked")
    assert any("revocation not checked" in n for n in signer.notes)


def test_supplied_crls_check_the_whole_path(
    root: CA, issuing: CA, dave: Issued, signed: bytes, good_crls: list[bytes]
) -> None:
    for mode in ("soft", "hard"):
        trust = mailseal.Trust([root.cert], crls=good_crls, revocation=mode)  # type: ignore[arg-type]
        signer = _only(mailseal.verify(signed, trust=trust))
        assert signer.valid, signer.describe()
        report = signer.validation
        assert report is not None and report.revocation_checked
        assert [(e.status, e.source, e.origin) for e in report.revocation] == [
            ("good", "crl", "supplied"),
            ("good", "crl", "supplied"),
        ]
        assert report.revocation[0].subject == dave.cert.subject.rfc4514_string()
        assert report.revocation[0].issuer == issuing.cert.subject.rfc4514_string()
        assert report.anchor == root.cert.subject.rfc4514_string()
        assert not signer.describe().endswith("revocation not checked")


def test_revoked_signer(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    when = NOW - 3 * HOUR
    crls = [root.crl(), issuing.crl(((dave.cert, KEY_COMPROMISE),), revoked_at=when)]
    for mode in ("soft", "hard"):
        trust = mailseal.Trust([root.cert], crls=crls, revocation=mode)  # type: ignore[arg-type]
        result = mailseal.verify(signed, trust=trust)
        assert result.status is Status.REVOKED
        signer = _only(result)
        assert signer.intact and not signer.trusted
        assert signer.validation is not None
        ev = signer.validation.revocation[0]
        assert (ev.status, ev.reason, ev.revoked_at) == ("revoked", "keyCompromise", when)
        (problem,) = signer.problems
        assert "keyCompromise" in problem.message and when.isoformat() in problem.message


def test_revoked_intermediate(root: CA, issuing: CA, signed: bytes) -> None:
    crls = [root.crl(((issuing.cert, x509.ReasonFlags.ca_compromise),)), issuing.crl()]
    result = mailseal.verify(signed, trust=mailseal.Trust([root.cert], crls=crls))
    assert result.status is Status.REVOKED
    signer = _only(result)
    assert "Issuing CA" in signer.problems[0].message
    assert signer.validation is not None
    assert [e.status for e in signer.validation.revocation] == ["good", "revoked"]


def test_hard_fail_needs_every_certificate(root: CA, issuing: CA, signed: bytes) -> None:
    only_leaf = mailseal.Trust([root.cert], crls=[issuing.crl()], revocation="hard")
    result = mailseal.verify(signed, trust=only_leaf)
    assert result.status is Status.REVOCATION_UNKNOWN
    (problem,) = _only(result).problems
    assert "Issuing CA" in problem.message and "unknown" in problem.message
    soft = mailseal.Trust([root.cert], crls=[issuing.crl()])
    signer = _only(mailseal.verify(signed, trust=soft))
    assert signer.valid and signer.validation is not None
    assert not signer.validation.revocation_checked
    assert [e.status for e in signer.validation.revocation] == ["good", "unknown"]


def test_a_sibling_cas_crl_does_not_speak_for_another_ca(
    root: CA, issuing: CA, signed: bytes
) -> None:
    """pyhanko-certvalidator 0.33 accepts a CRL signed by any CA that the certificate's issuer
    certified; mailseal keeps such CRLs out of scope (RFC 5280 §6.3.3)."""
    sibling = root.sub_ca("Revocation Test Sibling CA")
    trust = mailseal.Trust(
        [root.cert],
        intermediates=[sibling.cert],
        crls=[issuing.crl(), sibling.crl()],
        revocation="hard",
    )
    result = mailseal.verify(signed, trust=trust)
    assert result.status is Status.REVOCATION_UNKNOWN
    assert "Issuing CA" in _only(result).problems[0].message
    # nor does the signer's own CA vouch for itself (its CRL covers what it issued)
    only_issuing = mailseal.Trust([root.cert], crls=[issuing.crl()], revocation="hard")
    assert mailseal.verify(signed, trust=only_issuing).status is Status.REVOCATION_UNKNOWN


def test_revocation_off(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    crls = [root.crl(), issuing.crl(((dave.cert, KEY_COMPROMISE),))]
    off = mailseal.Trust([root.cert], crls=crls, revocation="off")
    signer = _only(mailseal.verify(signed, trust=off))
    assert signer.valid
    assert signer.validation is not None
    assert {e.status for e in signer.validation.revocation} == {"not-checked"}
    assert signer.describe().endswith("revocation not checked (off)")


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_stale_crl(root: CA, issuing: CA, signed: bytes, mode: str) -> None:
    stale = issuing.crl(this_update=NOW - 10 * DAY, next_update=NOW - DAY)
    trust = mailseal.Trust([root.cert], crls=[root.crl(), stale], revocation=mode)  # type: ignore[arg-type]
    result = mailseal.verify(signed, trust=trust)
    if mode == "hard":
        assert result.status is Status.REVOCATION_UNKNOWN
        assert "unknown" in _only(result).problems[0].message
    else:
        assert result.valid
        assert _only(result).validation.revocation[0].status == "unknown"  # type: ignore[union-attr]


def test_crl_signed_by_the_wrong_key(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    forged = issuing.crl(signing_key=ec.generate_private_key(ec.SECP256R1()))
    hard = mailseal.Trust([root.cert], crls=[root.crl(), forged], revocation="hard")
    assert mailseal.verify(signed, trust=hard).status is Status.REVOCATION_UNKNOWN
    # a forged CRL cannot revoke either
    forged_revoking = issuing.crl(
        ((dave.cert, KEY_COMPROMISE),), signing_key=ec.generate_private_key(ec.SECP256R1())
    )
    soft = mailseal.Trust([root.cert], crls=[root.crl(), forged_revoking])
    assert mailseal.verify(signed, trust=soft).valid


def test_crl_carried_in_the_message(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    sd = content_info(signed)["content"]
    revoking = issuing.crl(((dave.cert, KEY_COMPROMISE),))
    new = a_cms.SignedData(
        {
            "version": sd["version"],
            "digest_algorithms": sd["digest_algorithms"],
            "encap_content_info": sd["encap_content_info"],
            "certificates": sd["certificates"],
            "crls": a_cms.RevocationInfoChoices([a_crl.CertificateList.load(revoking)]),
            "signer_infos": sd["signer_infos"],
        }
    )
    carried = replace_cms(
        signed, a_cms.ContentInfo({"content_type": "signed_data", "content": new}).dump()
    )
    trust = mailseal.Trust([root.cert], crls=[root.crl()])
    result = mailseal.verify(carried, trust=trust)
    assert result.status is Status.REVOKED
    assert _only(result).validation.revocation[0].origin == "message"  # type: ignore[union-attr]
    # the cache keeps the two messages apart
    assert mailseal.verify(signed, trust=trust).valid
    ignoring = mailseal.Trust([root.cert], crls=[root.crl()], use_message_crls=False)
    assert mailseal.verify(carried, trust=ignoring).valid


# -- OCSP -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("delegated", [False, True], ids=["by-ca", "delegated"])
def test_ocsp_response_supplied(
    root: CA, issuing: CA, dave: Issued, signed: bytes, delegated: bool
) -> None:
    responder = issuing.responder() if delegated else None
    good = issuing.ocsp(dave.cert, "good", responder=responder)
    trust = mailseal.Trust([root.cert], crls=[root.crl()], ocsp_responses=[good], revocation="hard")
    signer = _only(mailseal.verify(signed, trust=trust))
    assert signer.valid, signer.describe()
    assert signer.validation is not None
    ev = signer.validation.revocation[0]
    assert (ev.status, ev.source, ev.origin) == ("good", "ocsp", "supplied")

    revoked = issuing.ocsp(dave.cert, "revoked", responder=responder, reason=KEY_COMPROMISE)
    trust = mailseal.Trust([root.cert], crls=[root.crl()], ocsp_responses=[revoked])
    result = mailseal.verify(signed, trust=trust)
    assert result.status is Status.REVOKED
    ev = _only(result).validation.revocation[0]  # type: ignore[union-attr]
    assert (ev.source, ev.reason) == ("ocsp", "keyCompromise")


def test_ocsp_unknown_status(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    unknown = issuing.ocsp(dave.cert, "unknown")
    hard = mailseal.Trust(
        [root.cert], crls=[root.crl()], ocsp_responses=[unknown], revocation="hard"
    )
    result = mailseal.verify(signed, trust=hard)
    assert result.status is Status.REVOCATION_UNKNOWN
    assert "OCSP" in _only(result).problems[0].message
    # a good CRL still settles it
    both = mailseal.Trust(
        [root.cert],
        crls=[root.crl(), issuing.crl()],
        ocsp_responses=[unknown],
        revocation="hard",
    )
    assert mailseal.verify(signed, trust=both).valid


def test_ocsp_response_signed_by_a_stranger(
    root: CA, issuing: CA, dave: Issued, signed: bytes
) -> None:
    stranger = CA.root("Stranger").sub_ca("Stranger CA").responder()
    forged = issuing.ocsp(dave.cert, "good", responder=stranger)
    hard = mailseal.Trust(
        [root.cert], crls=[root.crl()], ocsp_responses=[forged], revocation="hard"
    )
    assert mailseal.verify(signed, trust=hard).status is Status.REVOCATION_UNKNOWN


# -- fetching -------------------------------------------------------------------------------------
def test_fetching_crls_and_caching(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    fetcher = FakeFetcher(
        {ROOT_CRL: root.crl(), ISSUING_CRL: issuing.crl(), OCSP_URL: FetchError("down")}
    )
    trust = mailseal.Trust([root.cert], fetcher=fetcher, revocation="hard")
    signer = _only(mailseal.verify(signed, trust=trust))
    assert signer.valid, signer.describe()
    assert signer.validation is not None
    assert [e.origin for e in signer.validation.revocation] == [
        f"fetched from {ISSUING_CRL}",
        f"fetched from {ROOT_CRL}",
    ]
    assert sorted(set(fetcher.urls)) == sorted([ROOT_CRL, ISSUING_CRL, OCSP_URL])
    kinds = {r.url: r for r in fetcher.requests}
    assert kinds[OCSP_URL].body is not None and kinds[OCSP_URL].kind == "ocsp"
    assert kinds[ROOT_CRL].body is None and kinds[ROOT_CRL].kind == "crl"
    # the second verification is a cache hit: no network at all
    before = len(fetcher.requests)
    assert mailseal.verify(signed, trust=trust).valid
    assert len(fetcher.requests) == before


def test_fetched_crls_outlive_the_validation_cache(
    root: CA, issuing: CA, signed: bytes, signed_plain: bytes
) -> None:
    """Fetched CRLs stay cached until nextUpdate, across chains."""
    fetcher = FakeFetcher({ROOT_CRL: root.crl(), ISSUING_CRL: issuing.crl()})
    trust = mailseal.Trust([root.cert], fetcher=fetcher)
    mailseal.verify(signed, trust=trust)
    crl_fetches = fetcher.urls.count(ROOT_CRL)
    trust._cache.clear()  # the validation cache only: fetched data is kept
    assert mailseal.verify(signed, trust=trust).valid
    assert fetcher.urls.count(ROOT_CRL) == crl_fetches


def test_fetching_ocsp(root: CA, issuing: CA, dave: Issued, signed: bytes) -> None:
    fetcher = FakeFetcher({ROOT_CRL: root.crl(), OCSP_URL: issuing.ocsp(dave.cert, "good")})
    trust = mailseal.Trust([root.cert], fetcher=fetcher, revocation="hard")
    signer = _only(mailseal.verify(signed, trust=trust))
    assert signer.valid, signer.describe()
    ev = signer.validation.revocation[0]  # type: ignore[union-attr]
    assert (ev.source, ev.origin) == ("ocsp", f"fetched from {OCSP_URL}")
    assert ISSUING_CRL not in fetcher.urls  # OCSP settled it

    revoked = FakeFetcher(
        {ROOT_CRL: root.crl(), OCSP_URL: issuing.ocsp(dave.cert, "revoked", reason=KEY_COMPROMISE)}
    )
    result = mailseal.verify(signed, trust=mailseal.Trust([root.cert], fetcher=revoked))
    assert result.status is Status.REVOKED


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_everything_down(root: CA, signed: bytes, mode: str) -> None:
    fetcher = FakeFetcher({})
    trust = mailseal.Trust([root.cert], fetcher=fetcher, revocation=mode)  # type: ignore[arg-type]
    result = mailseal.verify(signed, trust=trust)
    if mode == "hard":
        assert result.status is Status.REVOCATION_UNKNOWN
        assert "cannot reach" in _only(result).problems[0].message
    else:
        assert result.valid
        assert any("cannot reach" in n for n in _only(result).notes)


def test_offline_never_fetches(root: CA, issuing: CA, signed: bytes) -> None:
    fetcher = FakeFetcher({ROOT_CRL: root.crl(), ISSUING_CRL: issuing.crl()})
    trust = mailseal.Trust([root.cert], fetcher=fetcher, offline=True, revocation="hard")
    assert mailseal.verify(signed, trust=trust).status is Status.REVOCATION_UNKNOWN
    assert fetcher.requests == []
    off = mailseal.Trust([root.cert], fetcher=fetcher, revocation="off")
    assert mailseal.verify(signed, trust=off).valid and fetcher.requests == []


def test_fetcher_garbage_is_not_evidence(root: CA, signed: bytes) -> None:
    fetcher = FakeFetcher({ROOT_CRL: b"<html>oops</html>", ISSUING_CRL: b"\x30\x03\x02\x01\x00"})
    trust = mailseal.Trust([root.cert], fetcher=fetcher, revocation="hard")
    assert mailseal.verify(signed, trust=trust).status is Status.REVOCATION_UNKNOWN


def test_fetching_the_issuer_by_aia(root: CA, issuing: CA) -> None:
    """fetch_issuers: a signature carrying only the signer's certificate; the intermediate is
    fetched from the caIssuers URL (RFC 5280 §4.2.2.1)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    url = "http://pki.test/issuing.cer"
    lone = issuing.user("lone@example.org", ca_issuers_url=url)
    signed = mailseal.sign(
        _mail("lone@example.org"), mailseal.load_identity(lone.cert_pem, lone.key_pem)
    )
    fetcher = FakeFetcher({url: issuing.cert.public_bytes(Encoding.DER)})
    assert mailseal.verify(signed, trust=mailseal.Trust([root.cert], fetcher=fetcher)).status is (
        Status.UNTRUSTED
    )
    assert fetcher.requests == []  # not without fetch_issuers
    trust = mailseal.Trust([root.cert], fetcher=fetcher, fetch_issuers=True)
    signer = _only(mailseal.verify(signed, trust=trust))
    assert signer.valid, signer.describe()
    assert len(signer.path) == 3
    assert [r.kind for r in fetcher.requests][:1] == ["certificate"]  # then the CRLs


# -- the validation cache -------------------------------------------------------------------------
def test_cache_is_invalidated_by_new_revocation_data(
    root: CA, issuing: CA, dave: Issued, signed: bytes
) -> None:
    trust = mailseal.Trust([root.cert], crls=[root.crl(), issuing.crl()])
    assert mailseal.verify(signed, trust=trust).valid
    trust.add_crls([issuing.crl(((dave.cert, KEY_COMPROMISE),), number=2)])
    assert mailseal.verify(signed, trust=trust).status is Status.REVOKED


def test_cache_hit_returns_the_same_outcome(root: CA, signed: bytes, dave: Issued) -> None:
    trust = mailseal.Trust([root.cert])
    first = mailseal.verify(signed, trust=trust)
    second = mailseal.verify(signed, trust=trust)
    assert first.signers[0].validation is second.signers[0].validation


# -- time -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def expired_signed(issuing: CA) -> tuple[bytes, Issued]:
    old = issuing.user(
        "old@example.org", not_before=NOW - 10 * DAY, not_after=NOW - DAY, encrypt=False
    )
    signed = mailseal.sign(_mail("old@example.org"), issuing.identity(old), when=NOW - 5 * DAY)
    return signed, old


def test_expired_since_is_expired_by_default(
    root: CA, expired_signed: tuple[bytes, Issued]
) -> None:
    signed, _ = expired_signed
    result = mailseal.verify(signed, trust=[root.cert])
    assert result.status is Status.EXPIRED


def test_valid_when_signed_with_trusted_signing_time(
    root: CA, expired_signed: tuple[bytes, Issued]
) -> None:
    signed, _ = expired_signed
    trust = mailseal.Trust([root.cert], trust_signing_time=True)
    signer = _only(mailseal.verify(signed, trust=trust))
    assert signer.valid, signer.describe()
    assert signer.validation is not None
    assert signer.validation.time_source == "signing-time"
    assert signer.validation.time == NOW - 5 * DAY
    assert "valid when signed (signing-time)" in signer.describe()
    assert any("not proven by a timestamp" in n for n in signer.notes)


def test_signing_time_outside_the_validity_does_not_help(root: CA, issuing: CA) -> None:
    old = issuing.user(
        "older@example.org", not_before=NOW - 10 * DAY, not_after=NOW - DAY, encrypt=False
    )
    signed = mailseal.sign(_mail("older@example.org"), issuing.identity(old), when=NOW)
    trust = mailseal.Trust([root.cert], trust_signing_time=True)
    result = mailseal.verify(signed, trust=trust)
    assert result.status is Status.EXPIRED
    assert any("either" in n for n in _only(result).notes)


def test_validation_time_given(root: CA, expired_signed: tuple[bytes, Issued]) -> None:
    signed, _ = expired_signed
    then = mailseal.Trust([root.cert], at=NOW - 3 * DAY)
    signer = _only(mailseal.verify(signed, trust=then))
    assert signer.valid
    assert signer.validation is not None
    assert (signer.validation.time, signer.validation.time_source) == (NOW - 3 * DAY, "given")


# -- untrusted: which anchor is missing -----------------------------------------------------------
def test_missing_anchor_is_named(root: CA, issuing: CA, signed: bytes) -> None:
    stranger = CA.root("Somebody Else")
    signer = _only(mailseal.verify(signed, trust=[stranger.cert]))
    assert signer.status is Status.UNTRUSTED
    assert signer.validation is not None
    assert signer.validation.missing_issuer == root.cert.subject.rfc4514_string()
    assert "neither a trust anchor nor among the certificates" in signer.problems[0].message
    # with the root in hand but not trusted, the message says so
    with_root = mailseal.verify(signed, trust=[stranger.cert], certificates=[root.cert])
    assert "which is not a trust anchor" in _only(with_root).problems[0].message


def test_missing_intermediate_is_named(root: CA, issuing: CA, dave: Issued) -> None:
    leaf_only = mailseal.sign(
        _mail("dave@example.org"), mailseal.load_identity(dave.cert_pem, dave.key_pem)
    )
    signer = _only(mailseal.verify(leaf_only, trust=[root.cert]))
    assert signer.status is Status.UNTRUSTED
    assert signer.validation is not None
    assert signer.validation.missing_issuer == issuing.cert.subject.rfc4514_string()
    assert "intermediate" in signer.problems[0].message
    with_it = mailseal.Trust([root.cert], intermediates=[issuing.cert])
    assert mailseal.verify(leaf_only, trust=with_it).valid


# -- a certificate alone --------------------------------------------------------------------------
def test_validate_a_certificate(root: CA, issuing: CA, dave: Issued) -> None:
    trust = mailseal.Trust([root.cert], crls=[root.crl(), issuing.crl()], revocation="hard")
    v = trust.validate(dave.cert, purpose="encrypt", extra=[issuing.cert])
    assert v.valid and v.status is Status.VALID, v.describe()
    assert v.describe() == "valid encryption certificate of dave@example.org"
    doc = v.to_json()
    assert doc["purpose"] == "encrypt" and doc["validation"]["revocation_checked"] is True
    wrong = trust.validate(dave.cert, email="eve@example.org", extra=[issuing.cert])
    assert wrong.status is Status.ADDRESS_MISMATCH and wrong.address_matches is False
    right = trust.validate(dave.cert, email="dave@EXAMPLE.org", extra=[issuing.cert])
    assert right.valid and right.address_matches is True


def test_validate_wrong_purpose(root: CA, issuing: CA) -> None:
    signing_only = issuing.user("sig@example.org", encrypt=False)
    v = mailseal.Trust([root.cert]).validate(
        signing_only.cert, purpose="encrypt", extra=[issuing.cert]
    )
    assert v.status is Status.WRONG_PURPOSE


# -- inputs ---------------------------------------------------------------------------------------
def test_bad_options() -> None:
    with pytest.raises(UsageError, match="revocation mode"):
        mailseal.Trust([], revocation="sometimes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="timezone"):
        mailseal.Trust([], at=dt.datetime(2025, 1, 1))
    with pytest.raises(InputError, match="CRL 1"):
        mailseal.Trust([], crls=[b"not a crl"])
    with pytest.raises(InputError, match="OCSP response 1"):
        mailseal.Trust([], ocsp_responses=[b"\x30\x03\x0a\x01\x01"])  # malformedRequest
    with pytest.raises(UsageError, match="fetch"):
        mailseal.Trust([], fetcher=object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="purpose"):
        mailseal.Trust([]).validate(CA.root().cert, purpose="sideways")


def test_crl_and_ocsp_as_objects_and_pem(root: CA, issuing: CA, signed: bytes) -> None:
    from cryptography.hazmat.primitives import serialization

    crl_obj = x509.load_der_x509_crl(issuing.crl())
    pem = x509.load_der_x509_crl(root.crl()).public_bytes(serialization.Encoding.PEM)
    trust = mailseal.Trust([root.cert], crls=[crl_obj, pem], revocation="hard")
    assert mailseal.verify(signed, trust=trust).valid


def test_inside_a_running_event_loop(root: CA, issuing: CA, signed: bytes) -> None:
    trust = mailseal.Trust([root.cert], crls=[root.crl(), issuing.crl()], revocation="hard")

    async def inside() -> bool:
        return mailseal.verify(signed, trust=trust).valid

    assert asyncio.run(inside())


# -- algorithm policy as data --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "weak"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), True),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), False),
        (lambda: ec.generate_private_key(ec.SECP256R1()), False),
        (lambda: ec.generate_private_key(ec.SECP224R1()), True),
        (lambda: dsa.generate_private_key(2048), True),
    ],
)
def test_key_weakness(make: Callable[[], object], weak: bool) -> None:
    key = make()
    assert (key_weakness(key.public_key()) is not None) is weak  # type: ignore[attr-defined]
