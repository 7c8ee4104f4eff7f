"""pyhanko-certvalidator behind one function: RFC 5280 path validation (§6.1), CRLs (§6.3,
including indirect and delta CRLs and issuing distribution points) and OCSP (RFC 6960).

Validation runs in two stages. Stage A builds and validates the path with every RFC 5280 check
except revocation: dates, signatures, basic constraints and path length, name constraints,
certificate policies with the caller's initial policy inputs, key usage of the CAs, and the
algorithm policy. Stage B then establishes the revocation status of each certificate below the
trust anchor, one at a time, with OCSP first (when the certificate names a responder or a
response was supplied) and CRLs second, so that the verdict can say, per certificate, what was
checked and what decided. Hard-fail turns an unknown status into ``revocation-unknown``;
soft-fail records it and goes on.

Imported lazily by :mod:`mailseal.validation.trust`: nothing here is needed on a cache hit.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import crl as a_crl
from asn1crypto import ocsp as a_ocsp
from asn1crypto import x509 as a_x509
from cryptography import x509
from pyhanko_certvalidator import CertificateValidator, PKIXValidationParams, ValidationContext
from pyhanko_certvalidator import errors as pv
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    Fetchers,
    OCSPFetcher,
)
from pyhanko_certvalidator.fetchers.common_utils import (
    enumerate_delivery_point_urls,
    format_ocsp_request,
    gather_aia_issuer_urls,
    process_ocsp_response_data,
    unpack_cert_content,
)
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    LEGACY_POLICY_MAP,
    NO_REVOCATION,
    REQUIRE_REVINFO,
    AcceptAllAlgorithms,
    AlgorithmUsageConstraint,
    AlgorithmUsagePolicy,
    CertRevTrustPolicy,
)
from pyhanko_certvalidator.revinfo.validate_crl import verify_crl
from pyhanko_certvalidator.revinfo.validate_ocsp import verify_ocsp_response
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

from mailseal.validation._inputs import load_crl
from mailseal.validation.algorithms import WEAK_DIGESTS, bits_weakness
from mailseal.validation.fetch import Fetcher, FetchError, FetchRequest
from mailseal.validation.verdict import Problem, RevocationEvidence, Status

__all__ = ["FetchCache", "PkixInputs", "PkixResult", "validate"]

# pyhanko-certvalidator logs soft failures with tracebacks at WARNING; mailseal reports them in
# the verdict instead. Nothing below WARNING is shown by default.
logging.getLogger("pyhanko_certvalidator").setLevel(logging.ERROR)

_FETCH_BUDGET = 32  # network requests per validation: a hostile chain cannot fan out
_URLS_PER_OBJECT = 4
_CACHE_MAX = 512
_NO_NEXT_UPDATE = _dt.timedelta(minutes=30)  # pyhanko's freshness fallback, for OCSP too
_MAX_CACHE = _dt.timedelta(days=7)

# RFC 5280 §5.3.1 names of asn1crypto's CRLReason values
_REASONS = {
    "unspecified": "unspecified",
    "key_compromise": "keyCompromise",
    "ca_compromise": "cACompromise",
    "affiliation_changed": "affiliationChanged",
    "superseded": "superseded",
    "cessation_of_operation": "cessationOfOperation",
    "certificate_hold": "certificateHold",
    "remove_from_crl": "removeFromCRL",
    "privilege_withdrawn": "privilegeWithdrawn",
    "aa_compromise": "aACompromise",
}


# -- algorithm policy ---------------------------------------------------------------------------
class _Policy(AlgorithmUsagePolicy):
    """:data:`~mailseal.validation.algorithms.WEAK_DIGESTS` and
    :data:`~mailseal.validation.algorithms.MIN_KEY_BITS` for pyhanko-certvalidator."""

    def digest_algorithm_allowed(self, algo: Any, moment: Any) -> AlgorithmUsageConstraint:
        name = algo["algorithm"].native
        reason = WEAK_DIGESTS.get(name)
        return AlgorithmUsageConstraint(reason is None, failure_reason=reason)

    def signature_algorithm_allowed(
        self, algo: Any, moment: Any, public_key: Any
    ) -> AlgorithmUsageConstraint:
        try:
            sig = algo.signature_algo
        except ValueError:
            sig = algo["algorithm"].native
        try:
            digest = algo.hash_algo
        except ValueError:
            digest = None
        if digest in WEAK_DIGESTS:
            return AlgorithmUsageConstraint(False, failure_reason=WEAK_DIGESTS[digest])
        if public_key is not None:
            family = {"rsassa_pkcs1v15": "rsa", "rsassa_pss": "rsa", "ecdsa": "ec", "dsa": "dsa"}
            fam = family.get(sig)
            if fam is not None:
                try:
                    bits = int(public_key.bit_size)
                except (ValueError, TypeError):
                    bits = 0
                reason = bits_weakness(fam, bits)
                if reason:
                    return AlgorithmUsageConstraint(False, failure_reason=reason)
        return AlgorithmUsageConstraint(True)


# -- fetching -----------------------------------------------------------------------------------
class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def charge(self) -> None:
        if self.left <= 0:
            raise FetchError(f"more than {_FETCH_BUDGET} network requests for one validation")
        self.left -= 1


class FetchCache:
    """What a :class:`~mailseal.validation.fetch.Fetcher` brought back, kept until the
    CRL's or the response's nextUpdate (at most a week), shared by every validation of a
    ``Trust``. ``generation`` changes whenever the content changes."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.generation = 0
        self._lock = threading.Lock()
        self._crls: OrderedDict[str, tuple[_dt.datetime, a_crl.CertificateList]] = OrderedDict()
        self._ocsp: OrderedDict[Any, tuple[_dt.datetime, a_ocsp.OCSPResponse, str]] = OrderedDict()
        self._certs: OrderedDict[str, tuple[_dt.datetime, list[a_x509.Certificate]]] = OrderedDict()

    @staticmethod
    def _now() -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)

    def _store(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > _CACHE_MAX:
                table.popitem(last=False)
            self.generation += 1

    def crl(self, url: str, budget: _Budget) -> a_crl.CertificateList:
        hit = self._crls.get(url)
        now = self._now()
        if hit is not None and now < hit[0]:
            return hit[1]
        budget.charge()
        data = self.fetcher.fetch(FetchRequest(url, "crl"))
        try:
            (c,) = load_crl(data)[:1]
        except ValueError as exc:
            raise FetchError(f"{url} did not return a CRL ({exc})") from None
        nxt = c["tbs_cert_list"]["next_update"].native
        until = min(nxt, now + _MAX_CACHE) if nxt is not None else now + _NO_NEXT_UPDATE
        if until > now:
            self._store(self._crls, url, (until, c))
        else:
            self._crls.pop(url, None)
        return c

    def fresh_crls(self) -> list[a_crl.CertificateList]:
        now = self._now()
        with self._lock:
            entries = list(self._crls.values())
        return [c for until, c in entries if now < until]

    def crl_origin(self, c: a_crl.CertificateList) -> str | None:
        with self._lock:
            entries = list(self._crls.items())
        for url, (_, cached) in entries:
            if cached is c:
                return url
        return None

    def ocsp_cached(self, tag: Any) -> a_ocsp.OCSPResponse | None:
        hit = self._ocsp.get(tag)
        if hit is not None and self._now() < hit[0]:
            return hit[1]
        return None

    def ocsp(
        self, tag: Any, urls: Sequence[str], request: a_ocsp.OCSPRequest, budget: _Budget
    ) -> a_ocsp.OCSPResponse:
        errors: list[str] = []
        for url in urls[:_URLS_PER_OBJECT]:
            try:
                budget.charge()
                body = self.fetcher.fetch(
                    FetchRequest(
                        url,
                        "ocsp",
                        body=request.dump(),
                        content_type="application/ocsp-request",
                    )
                )
                resp = process_ocsp_response_data(body, ocsp_request=request, ocsp_url=url)
            except (FetchError, pv.OCSPValidationError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            now = self._now()
            until = now + _NO_NEXT_UPDATE
            try:
                single = resp.basic_ocsp_response["tbs_response_data"]["responses"][0]
                nxt = single["next_update"].native
                if nxt is not None:
                    until = min(nxt, now + _MAX_CACHE)
            except (ValueError, KeyError, IndexError):
                pass
            if until > now:
                self._store(self._ocsp, tag, (until, resp, url))
            return resp
        raise pv.OCSPFetchError("; ".join(errors) or "no OCSP responder URL")

    def ocsp_origin(self, resp: a_ocsp.OCSPResponse) -> str | None:
        with self._lock:
            entries = list(self._ocsp.values())
        for _, cached, url in entries:
            if cached is resp:
                return url
        return None

    def certs(self, url: str, budget: _Budget) -> list[a_x509.Certificate]:
        hit = self._certs.get(url)
        now = self._now()
        if hit is not None and now < hit[0]:
            return hit[1]
        budget.charge()
        data = self.fetcher.fetch(FetchRequest(url, "certificate"))
        try:
            certs = list(unpack_cert_content(data, None, url, permit_pem=True))
        except ValueError as exc:
            raise FetchError(f"{url} did not return certificates ({exc})") from None
        self._store(self._certs, url, (now + _dt.timedelta(hours=1), certs))
        return certs


class _CRLs(CRLFetcher):
    def __init__(
        self,
        cache: FetchCache,
        budget: _Budget,
        keep: Callable[[a_crl.CertificateList], bool] | None = None,
    ) -> None:
        self._cache = cache
        self._budget = budget
        self._keep = keep or (lambda _: True)
        self._by_cert: dict[bytes, list[a_crl.CertificateList]] = {}

    async def fetch(self, cert: Any, *, use_deltas: Any = None) -> Iterable[a_crl.CertificateList]:
        results: list[a_crl.CertificateList] = []
        errors: list[str] = []
        for dp in get_relevant_crl_dps(cert, use_deltas=use_deltas is not False):
            for url in list(enumerate_delivery_point_urls(dp))[:_URLS_PER_OBJECT]:
                try:
                    fetched = self._cache.crl(url, self._budget)
                    if self._keep(fetched):
                        results.append(fetched)
                    break  # the URLs of one distribution point are interchangeable
                except FetchError as exc:
                    errors.append(str(exc))
        self._by_cert[issuer_serial(cert)] = results
        if not results and errors:
            raise pv.CRLFetchError("; ".join(errors))
        return results

    def fetched_crls(self) -> Iterable[a_crl.CertificateList]:
        return [c for c in self._cache.fresh_crls() if self._keep(c)]

    def fetched_crls_for_cert(self, cert: Any) -> Iterable[a_crl.CertificateList]:
        return self._by_cert[issuer_serial(cert)]


class _OCSPs(OCSPFetcher):
    def __init__(self, cache: FetchCache, budget: _Budget) -> None:
        self._cache = cache
        self._budget = budget
        self._seen: dict[bytes, list[a_ocsp.OCSPResponse]] = {}

    async def fetch(self, cert: Any, authority: Any) -> a_ocsp.OCSPResponse:
        urls = get_ocsp_urls(cert)
        if not urls:
            raise pv.OCSPFetchError("the certificate names no OCSP responder")
        tag = (issuer_serial(cert), authority.hashable)
        cached = self._cache.ocsp_cached(tag)
        if cached is None:
            request = format_ocsp_request(
                cert, authority, certid_hash_algo="sha1", request_nonces=True
            )
            cached = self._cache.ocsp(tag, urls, request, self._budget)
        self._seen.setdefault(issuer_serial(cert), []).append(cached)
        return cached

    def fetched_responses(self) -> Iterable[a_ocsp.OCSPResponse]:
        return [r for rs in self._seen.values() for r in rs]

    def fetched_responses_for_cert(self, cert: Any) -> Iterable[a_ocsp.OCSPResponse]:
        return self._seen.get(issuer_serial(cert), [])


class _Certs(CertificateFetcher):
    def __init__(self, cache: FetchCache, budget: _Budget) -> None:
        self._cache = cache
        self._budget = budget
        self._fetched: list[a_x509.Certificate] = []

    async def _from(self, urls: Iterable[str]) -> AsyncGenerator[a_x509.Certificate, None]:
        for url in list(urls)[:_URLS_PER_OBJECT]:
            try:
                certs = self._cache.certs(url, self._budget)
            except FetchError:
                continue
            for c in certs:
                self._fetched.append(c)
                yield c

    def fetch_cert_issuers(self, cert: Any) -> AsyncGenerator[a_x509.Certificate, None]:
        return self._from(gather_aia_issuer_urls(cert))

    def fetch_crl_issuers(self, certificate_list: Any) -> AsyncGenerator[a_x509.Certificate, None]:
        return self._from(certificate_list.issuer_cert_urls)

    def fetched_certs(self) -> Iterable[a_x509.Certificate]:
        return list(self._fetched)


# -- validation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PkixInputs:
    anchors: Sequence[a_x509.Certificate]
    others: Sequence[a_x509.Certificate]
    crls: Sequence[tuple[a_crl.CertificateList, str]]  # (CRL, origin)
    ocsps: Sequence[tuple[a_ocsp.OCSPResponse, str]]
    moment: _dt.datetime
    revocation: str  # "soft", "hard", "off"
    allow_weak: bool
    params: PKIXValidationParams
    cache: FetchCache | None = None  # fetching allowed when set
    fetch_issuers: bool = False
    retroactive: bool = False
    leaf_label: str = "the signer's certificate"


@dataclass
class PkixResult:
    path: tuple[a_x509.Certificate, ...] = ()  # signer first, anchor last
    problems: list[Problem] = field(default_factory=list)
    evidence: list[RevocationEvidence] = field(default_factory=list)
    revocation_checked: bool = False
    anchor: str | None = None
    missing_issuer: str | None = None
    policies: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    expires: _dt.datetime | None = None  # earliest nextUpdate of the evidence


def _name(cert: a_x509.Certificate) -> str:
    try:
        return x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string()
    except Exception:  # a certificate cryptography cannot read
        try:
            return str(cert.subject.human_friendly)
        except Exception:
            return "(undecodable)"


_SHORT = {
    "common_name": "CN",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "country_name": "C",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "street_address": "STREET",
    "domain_component": "DC",
    "user_id": "UID",
}


def _escape(value: str) -> str:
    out = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def _x509_name(name: a_x509.Name) -> str:
    """An asn1crypto Name as RFC 4514 text, in the order cryptography prints it."""
    try:
        rdns = []
        for rdn in reversed(list(name.chosen)):
            parts = []
            for atv in rdn:
                kind = atv["type"]
                key = _SHORT.get(kind.native, kind.dotted)
                parts.append(f"{key}={_escape(str(atv['value'].native))}")
            rdns.append("+".join(parts))
        return ",".join(rdns)
    except Exception:
        try:
            return str(name.human_friendly)
        except Exception:
            return "(undecodable)"


def _clean(exc: BaseException) -> str:
    text = getattr(exc, "failure_msg", None) or getattr(exc, "msg", None)
    if not isinstance(text, str):
        text = str(exc.args[0]) if exc.args else ""
    text = text.strip() or type(exc).__name__
    return text[0].lower() + text[1:]


def _ocsp_said(
    cert: a_x509.Certificate, inp: PkixInputs, fetched: Iterable[a_ocsp.OCSPResponse]
) -> str | None:
    """The certStatus an OCSP response gives for ``cert`` ("good", "revoked", "unknown")."""
    for r in [*(r for r, _ in inp.ocsps), *fetched]:
        try:
            for single in r.basic_ocsp_response["tbs_response_data"]["responses"]:
                if single["cert_id"]["serial_number"].native == cert.serial_number:
                    return str(single["cert_status"].name)
        except Exception:  # noqa: S112 - a malformed response says nothing
            continue
    return None


def _missing_issuer(
    leaf: a_x509.Certificate, pool: Sequence[a_x509.Certificate]
) -> tuple[str, str]:
    """Walk up by names from the leaf; return (where the chain ends, the issuer not found)."""
    by_subject: dict[bytes, list[a_x509.Certificate]] = {}
    for c in pool:
        by_subject.setdefault(c.subject.dump(), []).append(c)
    current = leaf
    seen = {leaf.dump()}
    for _ in range(16):
        if current.self_issued:
            return _name(current), _x509_name(current.subject)
        up = [c for c in by_subject.get(current.issuer.dump(), []) if c.dump() not in seen]
        if not up:
            break
        current = up[0]
        seen.add(current.dump())
    return _name(current), _x509_name(current.issuer)


async def _stage_a(
    leaf: a_x509.Certificate, inp: PkixInputs, result: PkixResult, fetchers: Fetchers | None
) -> Any:
    ctx = ValidationContext(
        trust_roots=list(inp.anchors),
        other_certs=list(inp.others),
        moment=inp.moment,
        allow_fetching=fetchers is not None and inp.fetch_issuers,
        fetchers=fetchers if inp.fetch_issuers else None,
        revinfo_policy=CertRevTrustPolicy(NO_REVOCATION),
        algorithm_usage_policy=AcceptAllAlgorithms() if inp.allow_weak else _Policy(),
    )
    validator = CertificateValidator(
        leaf, intermediate_certs=list(inp.others), validation_context=ctx, pkix_params=inp.params
    )
    try:
        return await validator.async_validate_path()
    except pv.ExpiredError as exc:
        result.problems.append(Problem(Status.EXPIRED, _clean(exc)))
    except pv.NotYetValidError as exc:
        result.problems.append(Problem(Status.NOT_YET_VALID, _clean(exc)))
    except pv.DisallowedAlgorithmError as exc:
        result.problems.append(Problem(Status.WEAK_ALGORITHM, _clean(exc)))
    except (pv.PathBuildingError, pv.InvalidCertificateError) as exc:
        pool = [*inp.others, *inp.anchors]
        end, missing = _missing_issuer(leaf, pool)
        result.missing_issuer = missing
        if isinstance(exc, pv.InvalidCertificateError) and "self-signed" not in str(exc):
            result.problems.append(Problem(Status.UNTRUSTED, _clean(exc)))
        elif end == missing:
            result.problems.append(
                Problem(
                    Status.UNTRUSTED,
                    f"no path to a trust anchor: the chain ends at the root {end!r}, "
                    "which is not a trust anchor",
                )
            )
        else:
            result.problems.append(
                Problem(
                    Status.UNTRUSTED,
                    f"no path to a trust anchor: the chain ends at {end!r}, whose issuer "
                    f"{missing!r} is neither a trust anchor nor among the certificates "
                    "available (supply it as a trust anchor or an intermediate)",
                )
            )
    except (pv.PathValidationError, pv.ValidationError) as exc:
        result.problems.append(Problem(Status.UNTRUSTED, _clean(exc)))
    except Exception as exc:  # a malformed certificate deep in the chain
        result.problems.append(Problem(Status.UNTRUSTED, f"the chain cannot be validated ({exc})"))
    return None


def _reason(exc: pv.RevokedError) -> str:
    try:
        native = exc.reason.native
    except Exception:
        return "unspecified"
    return _REASONS.get(str(native), str(native))


def _crl_evidence(
    cert: a_x509.Certificate, inp: PkixInputs
) -> tuple[str | None, str | None, _dt.datetime | None, _dt.datetime | None]:
    """(origin, issuer, thisUpdate, nextUpdate) of the freshest full CRL that covers cert."""
    issuers = {cert.issuer.dump()}
    for dp in cert.crl_distribution_points or ():
        for gn in dp["crl_issuer"] or ():
            if gn.name == "directory_name":
                issuers.add(gn.chosen.dump())
    candidates: list[tuple[a_crl.CertificateList, str]] = list(inp.crls)
    if inp.cache is not None:
        for c in inp.cache.fresh_crls():
            candidates.append((c, f"fetched from {inp.cache.crl_origin(c)}"))
    best: tuple[a_crl.CertificateList, str] | None = None
    for c, origin in candidates:
        try:
            tbs = c["tbs_cert_list"]
            if tbs["issuer"].dump() not in issuers or c.delta_crl_indicator_value is not None:
                continue
            this = tbs["this_update"].native
            if this > inp.moment and not inp.retroactive:
                continue
            if best is None or this > best[0]["tbs_cert_list"]["this_update"].native:
                best = (c, origin)
        except Exception:  # noqa: S112 - a malformed CRL is not evidence
            continue
    if best is None:
        return None, None, None, None
    tbs = best[0]["tbs_cert_list"]
    return (
        best[1],
        _x509_name(tbs["issuer"]),
        tbs["this_update"].native,
        tbs["next_update"].native,
    )


def _ocsp_evidence(
    cert: a_x509.Certificate, inp: PkixInputs, fetched: Iterable[a_ocsp.OCSPResponse]
) -> tuple[str | None, str | None, _dt.datetime | None, _dt.datetime | None]:
    candidates = [*inp.ocsps]
    for r in fetched:
        origin = inp.cache.ocsp_origin(r) if inp.cache is not None else None
        candidates.append((r, f"fetched from {origin}" if origin else "fetched"))
    for r, origin in candidates:
        try:
            data = r.basic_ocsp_response["tbs_response_data"]
            for single in data["responses"]:
                if single["cert_id"]["serial_number"].native != cert.serial_number:
                    continue
                rid = data["responder_id"]
                responder = (
                    _x509_name(rid.chosen) if rid.name == "by_name" else "a responder by key hash"
                )
                return (
                    origin,
                    responder,
                    single["this_update"].native,
                    single["next_update"].native,
                )
        except Exception:  # noqa: S112 - a malformed response is not evidence
            continue
    return None, None, None, None


def _evidence(
    cert: a_x509.Certificate,
    status: str,
    detail: str,
    *,
    source: str | None = None,
    facts: tuple[str | None, str | None, _dt.datetime | None, _dt.datetime | None] = (
        None,
        None,
        None,
        None,
    ),
    revoked_at: _dt.datetime | None = None,
    reason: str | None = None,
) -> RevocationEvidence:
    origin, issuer, this, nxt = facts
    return RevocationEvidence(
        subject=_name(cert),
        serial=format(cert.serial_number, "x"),
        status=status,
        detail=detail,
        source=source,
        origin=origin,
        issuer=issuer,
        this_update=this,
        next_update=nxt,
        revoked_at=revoked_at,
        reason=reason,
    )


async def _revocation_of(
    cert: a_x509.Certificate,
    what: str,
    path: Any,
    ctx: ValidationContext,
    inp: PkixInputs,
    ocsp_fetcher: _OCSPs | None,
) -> RevocationEvidence:
    failures: list[str] = []
    declares_ocsp = bool(get_ocsp_urls(cert))
    if declares_ocsp or inp.ocsps:
        try:
            await verify_ocsp_response(cert, path, ctx)
            fetched = ocsp_fetcher.fetched_responses_for_cert(cert) if ocsp_fetcher else []
            return _evidence(
                cert,
                "good",
                f"an OCSP response says {what} is not revoked",
                source="ocsp",
                facts=_ocsp_evidence(cert, inp, fetched),
            )
        except pv.RevokedError as exc:
            fetched = ocsp_fetcher.fetched_responses_for_cert(cert) if ocsp_fetcher else []
            return _evidence(
                cert,
                "revoked",
                f"an OCSP response says {what} was revoked",
                source="ocsp",
                facts=_ocsp_evidence(cert, inp, fetched),
                revoked_at=exc.revocation_dt,
                reason=_reason(exc),
            )
        except pv.OCSPNoMatchesError:
            pass
        except pv.OCSPFetchError as exc:
            if declares_ocsp:
                failures.append(f"OCSP: {_clean(exc)}")
        except pv.OCSPValidationIndeterminateError as exc:
            fetched = ocsp_fetcher.fetched_responses_for_cert(cert) if ocsp_fetcher else []
            if _ocsp_said(cert, inp, fetched) == "unknown":
                detail = "the responder does not know the certificate (status unknown)"
            else:
                detail = "; ".join(str(f[0]) for f in exc.failures) or (
                    "no OCSP response establishes it"
                )
            failures.append(f"OCSP: {detail}")
        except Exception as exc:  # OCSPValidationError, malformed responses
            failures.append(f"OCSP: {_clean(exc)}")
    try:
        await verify_crl(cert, path, ctx)
        return _evidence(
            cert,
            "good",
            f"a CRL says {what} is not revoked",
            source="crl",
            facts=_crl_evidence(cert, inp),
        )
    except pv.RevokedError as exc:
        return _evidence(
            cert,
            "revoked",
            f"a CRL says {what} was revoked",
            source="crl",
            facts=_crl_evidence(cert, inp),
            revoked_at=exc.revocation_dt,
            reason=_reason(exc),
        )
    except pv.CRLNoMatchesError:
        pass
    except pv.CRLValidationIndeterminateError as exc:
        detail = "; ".join(str(f[0]) for f in exc.failures) or _clean(exc)
        failures.append(f"CRL: {detail}")
    except Exception as exc:  # CRLFetchError, CRLValidationError, malformed CRLs
        failures.append(f"CRL: {_clean(exc)}")
    if not failures:
        failures.append("no CRL or OCSP response covers it")
    return _evidence(
        cert, "unknown", f"the revocation status of {what} is unknown: " + "; ".join(failures)
    )


def _crl_scope(
    cert: a_x509.Certificate, known: Sequence[a_x509.Certificate]
) -> Callable[[a_crl.CertificateList], bool]:
    """Which CRLs may speak for ``cert``'s revocation status.

    RFC 5280 §6.3.3: a CRL from the certificate's issuer, or an indirect CRL from an issuer its
    distribution points name as cRLIssuer. pyhanko-certvalidator also accepts a CRL signed by
    any certificate its issuer certified (a "sibling"), which would let one CA vouch for
    another's certificates: such CRLs are kept out of the check of ``cert`` (they stay
    available for other certificates).
    """
    issuer = cert.issuer
    named: set[str] = set()
    for ext in (cert.crl_distribution_points_value, cert.freshest_crl_value):
        for dp in ext or ():
            for gn in dp["crl_issuer"] or ():
                if gn.name == "directory_name":
                    named.add(gn.chosen.hashable)
    siblings = {c.subject.hashable for c in known if c.issuer == issuer and c.subject != issuer}

    def keep(c: a_crl.CertificateList) -> bool:
        try:
            name = c["tbs_cert_list"]["issuer"]
            if name == issuer or name.hashable in named:
                return True
            return name.hashable not in siblings
        except Exception:  # a malformed CRL speaks for nobody
            return False

    return keep


async def _stage_b(path: Any, inp: PkixInputs, result: PkixResult) -> None:
    nested = REQUIRE_REVINFO if inp.revocation == "hard" else LEGACY_POLICY_MAP["soft-fail"]
    certs = list(path.iter_certs(include_root=False))  # below the anchor, CA first
    known = [*inp.anchors, *inp.others, *certs]
    budget = _Budget(_FETCH_BUDGET)
    for i, cert in enumerate(reversed(certs)):
        keep = _crl_scope(cert, known)
        fetchers: Fetchers | None = None
        ocsp_fetcher: _OCSPs | None = None
        if inp.cache is not None:
            ocsp_fetcher = _OCSPs(inp.cache, budget)
            fetchers = Fetchers(
                ocsp_fetcher=ocsp_fetcher,
                crl_fetcher=_CRLs(inp.cache, budget, keep),
                cert_fetcher=_Certs(inp.cache, budget),
            )
        # a context per certificate: pyhanko-certvalidator remembers who issued a CRL, and
        # that memory must not carry a CRL over to a certificate outside its scope
        ctx = ValidationContext(
            trust_roots=list(inp.anchors),
            other_certs=[*inp.others, *certs],
            moment=inp.moment,
            crls=[c for c, _ in inp.crls if keep(c)],
            ocsps=[r for r, _ in inp.ocsps],
            allow_fetching=fetchers is not None,
            fetchers=fetchers,
            revinfo_policy=CertRevTrustPolicy(nested, retroactive_revinfo=inp.retroactive),
            algorithm_usage_policy=AcceptAllAlgorithms() if inp.allow_weak else _Policy(),
        )
        # Stage A validated the CAs of this path: say so, so that a CRL issued by one of them
        # is not re-validated. (Re-verifying a certificate's signature on the same asn1crypto
        # object can fail: re-encoding after parsing is not always byte-exact, e.g. for unique
        # IDs with unused bits, as in PKITS 4.3.6.)
        done = ValidationPath(path.trust_anchor, interm=[], leaf=None)
        for ca in certs[:-1]:
            done = done.copy_and_append(ca)
            ctx.record_validation(ca, done)  # type: ignore[no-untyped-call]
        what = inp.leaf_label if i == 0 else f"the CA certificate {_name(cert)!r}"
        ev = await _revocation_of(cert, what, path, ctx, inp, ocsp_fetcher)
        result.evidence.append(ev)
        if ev.next_update is not None and (
            result.expires is None or ev.next_update < result.expires
        ):
            result.expires = ev.next_update
        if ev.status == "revoked":
            when = f" on {ev.revoked_at.isoformat()}" if ev.revoked_at else ""
            result.problems.append(
                Problem(
                    Status.REVOKED,
                    f"{what} was revoked{when} (reason: {ev.reason or 'unspecified'}; "
                    f"{ev.source.upper() if ev.source else 'revocation data'}"
                    f"{' from ' + ev.issuer if ev.issuer else ''})",
                )
            )
        elif ev.status == "unknown":
            if inp.revocation == "hard":
                result.problems.append(Problem(Status.REVOCATION_UNKNOWN, ev.detail))
            else:
                result.notes.append(f"revocation not checked: {ev.detail}")
    result.revocation_checked = all(e.status in ("good", "revoked") for e in result.evidence)


async def validate(leaf: a_x509.Certificate, inp: PkixInputs) -> PkixResult:
    """Validate ``leaf``'s path and revocation; never raises for a bad chain."""
    result = PkixResult()
    fetchers: Fetchers | None = None
    if inp.cache is not None:
        budget = _Budget(_FETCH_BUDGET)
        fetchers = Fetchers(
            ocsp_fetcher=_OCSPs(inp.cache, budget),
            crl_fetcher=_CRLs(inp.cache, budget),
            cert_fetcher=_Certs(inp.cache, budget),
        )
    path = await _stage_a(leaf, inp, result, fetchers if inp.fetch_issuers else None)
    if path is None:
        return result
    certs = list(path.iter_certs(include_root=True))
    result.path = tuple(reversed(certs))
    try:
        anchor = path.trust_anchor.authority
        result.anchor = _x509_name(anchor.name)
    except Exception:
        result.anchor = _name(certs[0]) if certs else None
    try:
        pols = path.qualified_policies()
        result.policies = tuple(sorted({str(p.user_domain_policy_id) for p in pols or ()}))
    except Exception:
        result.policies = ()
    if inp.revocation == "off":
        result.notes.append("revocation checking is off")
        result.evidence = [
            _evidence(c, "not-checked", "revocation checking is off")
            for c in reversed(list(path.iter_certs(include_root=False)))
        ]
        return result
    await _stage_b(path, inp, result)
    return result
