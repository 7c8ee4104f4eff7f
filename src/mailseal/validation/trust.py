"""Trust in a certificate: a path to an anchor (RFC 5280, via pyhanko-certvalidator), its
revocation status (CRLs, OCSP), fitness for S/MIME (RFC 8550 §4.4), the algorithm policy, and
the mail addresses it holds.

:class:`Trust` is reusable and caches validation results for unchanged chains for a short
while, so verifying many messages from the same senders costs one validation each.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from mailseal._values import quick_init
from mailseal.errors import InputError, UsageError
from mailseal.validation.algorithms import key_weakness
from mailseal.validation.cache import CertificateCache
from mailseal.validation.certinfo import certificate_addresses, match_address, purpose_problems
from mailseal.validation.fetch import Fetcher
from mailseal.validation.revocation import REVOCATION_MODES, RevocationMode
from mailseal.validation.verdict import (
    CertificateVerdict,
    Problem,
    Status,
    ValidationReport,
    worst,
)

__all__ = [
    "REVOCATION_MODES",
    "RevocationMode",
    "Trust",
    "TrustOutcome",
    "certificate_addresses",
    "match_address",
]

_T = TypeVar("_T")
_CACHE_SECONDS = 60.0
_CACHE_MAX = 4096


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@quick_init
@dataclass(frozen=True, slots=True)
class TrustOutcome:
    trusted: bool
    problems: tuple[Problem, ...]
    path: tuple[x509.Certificate, ...]
    report: ValidationReport | None = None
    notes: tuple[str, ...] = ()


def _purpose_problems(
    cert: x509.Certificate, purpose: str, *, allow_any_eku: bool
) -> list[Problem]:
    return [
        Problem(Status.WRONG_PURPOSE, message)
        for message in purpose_problems(cert, purpose, allow_any_eku=allow_any_eku)
    ]


def weak_key_problem(cert: x509.Certificate) -> Problem | None:
    try:
        pub = cert.public_key()
    except Exception:  # an unknown key algorithm (or DSA without parameters): checked elsewhere
        return None
    reason = key_weakness(pub)
    if reason is None:
        return None
    return Problem(Status.WEAK_ALGORITHM, f"the certificate has {reason}")


def _to_der_list(items: Sequence[object], kind: str) -> list[bytes]:
    out: list[bytes] = []
    for item in items:
        if isinstance(item, bytes | bytearray | memoryview):
            out.append(bytes(item))
        elif isinstance(item, x509.CertificateRevocationList | x509_ocsp.OCSPResponse):
            out.append(item.public_bytes(serialization.Encoding.DER))
        else:
            raise UsageError(f"a {kind} must be bytes (DER or PEM) or a cryptography object")
    return out


class Trust:
    """Trust anchors, extra intermediates, revocation data and policy, with a validation cache.

    - ``anchors``: the trust anchors; ``intermediates``: CA certificates to build paths with.
    - ``crls`` and ``ocsp_responses``: revocation data supplied by the caller (DER or PEM
      bytes, or cryptography objects); CRLs carried in a message are used too
      (``use_message_crls``).
    - ``revocation``: ``"soft"`` (default: use what can be found; an unknown status is
      recorded in the verdict, which then says revocation was not checked), ``"hard"`` (the
      status of every certificate below the anchor must be established, else
      ``revocation-unknown``) or ``"off"``.
    - ``fetcher``: a :class:`~mailseal.validation.fetch.Fetcher` to fetch CRLs from
      distribution points and OCSP responses from responders (and, with ``fetch_issuers``,
      issuer certificates from AIA); ``offline=True`` never fetches. Without a fetcher,
      nothing is fetched.
    - ``at``: the validation time (default: now). ``trust_signing_time``: a signature whose
      certificate has expired since is valid when the certificate was valid at the signer's
      signingTime (which the signer asserts: trust it only on purpose). A time proven by a
      verified RFC 3161 timestamp token in the signature is used without this option (see
      :mod:`mailseal.validation.timestamp`).
    - ``allow_weak`` accepts weak algorithms (see :mod:`mailseal.validation.algorithms`);
      ``allow_any_eku`` accepts anyExtendedKeyUsage for emailProtection;
      ``check_address=False`` skips the From check.
    - ``policies`` (the RFC 5280 user-initial-policy-set, default anyPolicy),
      ``require_explicit_policy``, ``inhibit_policy_mapping``, ``inhibit_any_policy``: the
      RFC 5280 §6.1.1 policy inputs.
    - ``cache``: a :class:`~mailseal.validation.cache.CertificateCache` of CA certificates:
      issuers found there are offered for path building, and the CA certificates of every
      path built to an anchor are added to it.

    Validation results for an unchanged chain are cached for a minute (and never past the
    nextUpdate of the revocation data used); :meth:`add_crls` and :meth:`add_ocsp_responses`
    invalidate the cache.
    """

    def __init__(
        self,
        anchors: Sequence[x509.Certificate] = (),
        *,
        intermediates: Sequence[x509.Certificate] = (),
        crls: Sequence[bytes | x509.CertificateRevocationList] = (),
        ocsp_responses: Sequence[bytes | x509_ocsp.OCSPResponse] = (),
        revocation: RevocationMode = "soft",
        offline: bool = False,
        fetcher: Fetcher | None = None,
        fetch_issuers: bool = False,
        at: _dt.datetime | None = None,
        trust_signing_time: bool = False,
        allow_weak: bool = False,
        allow_any_eku: bool = False,
        check_address: bool = True,
        use_message_crls: bool = True,
        policies: Sequence[str] | None = None,
        require_explicit_policy: bool = False,
        inhibit_policy_mapping: bool = False,
        inhibit_any_policy: bool = False,
        cache: CertificateCache | None = None,
    ) -> None:
        if revocation not in REVOCATION_MODES:
            raise UsageError(
                f"unknown revocation mode {revocation!r}; choose one of "
                + ", ".join(REVOCATION_MODES)
            )
        if at is not None and at.utcoffset() is None:
            raise UsageError("the validation time must be timezone-aware")
        if fetcher is not None and not isinstance(fetcher, Fetcher):
            raise UsageError("fetcher must have a fetch(request) method")
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        self.revocation: RevocationMode = revocation
        self.offline = offline
        self.fetcher = fetcher
        self.fetch_issuers = fetch_issuers
        self.at = at
        self.trust_signing_time = trust_signing_time
        self.allow_any_eku = allow_any_eku
        self.allow_weak = allow_weak
        self.check_address = check_address
        self.use_message_crls = use_message_crls
        self.policies = tuple(policies) if policies is not None else None
        self.require_explicit_policy = require_explicit_policy
        self.inhibit_policy_mapping = inhibit_policy_mapping
        self.inhibit_any_policy = inhibit_any_policy
        if cache is not None and not isinstance(cache, CertificateCache):
            raise UsageError("cache must have by_subject(name) and add(certificates) methods")
        self.cache = cache
        self._lock = threading.Lock()
        self._crls: list[tuple[Any, str]] = []
        self._ocsps: list[tuple[Any, str]] = []
        self._epoch = 0
        self.add_crls(crls)
        self.add_ocsp_responses(ocsp_responses)
        self._der: tuple[list[bytes], list[bytes]] | None = None
        self._fetch_cache: Any = None
        self._cache: OrderedDict[tuple[object, ...], tuple[float, TrustOutcome]] = OrderedDict()

    # -- revocation inputs ---------------------------------------------------------------------
    def add_crls(self, crls: Sequence[bytes | x509.CertificateRevocationList]) -> None:
        """Add CRLs (a newer CRL of an issuer supersedes older ones); clears the cache."""
        from mailseal.validation._inputs import load_crl

        for n, der in enumerate(_to_der_list(crls, "CRL"), 1):
            try:
                self._crls.extend((c, "supplied") for c in load_crl(der))
            except ValueError as exc:
                raise InputError(f"CRL {n} cannot be read ({exc})") from None
        self._invalidate()

    def add_ocsp_responses(self, responses: Sequence[bytes | x509_ocsp.OCSPResponse]) -> None:
        """Add OCSP responses; clears the cache."""
        from mailseal.validation._inputs import load_ocsp

        for n, der in enumerate(_to_der_list(responses, "OCSP response"), 1):
            try:
                self._ocsps.extend((r, "supplied") for r in load_ocsp(der))
            except ValueError as exc:
                raise InputError(f"OCSP response {n} cannot be used ({exc})") from None
        self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._epoch += 1
            if hasattr(self, "_cache"):
                self._cache.clear()

    @property
    def fetching(self) -> bool:
        return self.fetcher is not None and not self.offline and self.revocation != "off"

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(
        self,
        cert: x509.Certificate,
        *,
        extra: Sequence[x509.Certificate] = (),
        crls: Sequence[bytes] = (),
        purpose: str = "sign",
        at: _dt.datetime | None = None,
        signing_time: _dt.datetime | None = None,
        timestamp: tuple[_dt.datetime, str] | None = None,
    ) -> TrustOutcome:
        """Path, validity dates, revocation and S/MIME purpose for ``cert``.

        ``extra`` are other certificates (those in the message); ``crls`` are CRLs (DER)
        carried in the message; ``signing_time`` is the signer's claimed signingTime, used
        only with ``trust_signing_time``; ``timestamp`` is a time proven by a verified RFC 3161
        timestamp token (genTime, TSA name; see :mod:`mailseal.validation.timestamp`), used
        before the signingTime when the certificate has expired since.
        """
        when = at or self.at
        msg_crls = tuple(crls) if self.use_message_crls and self.revocation != "off" else ()
        stime = signing_time if self.trust_signing_time else None
        key = (
            cert,
            frozenset(extra),
            frozenset(msg_crls),
            purpose,
            when,
            stime,
            timestamp,
            self._epoch,
        )
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now < hit[0]:
                self._cache.move_to_end(key)
                return hit[1]
        try:
            outcome = self._evaluate(cert, extra, msg_crls, purpose, when, stime, timestamp)
        except Exception as exc:  # a certificate that cannot be decoded along the way
            outcome = TrustOutcome(
                False,
                (Problem(Status.UNTRUSTED, f"the certificate chain cannot be read ({exc})"),),
                (cert,),
            )
        deadline = now + _CACHE_SECONDS if (when is None or self.fetching) else float("inf")
        report = outcome.report
        if report is not None and when is None:
            for ev in report.revocation:
                if ev.next_update is not None:
                    left = (ev.next_update - _dt.datetime.now(_dt.UTC)).total_seconds()
                    deadline = min(deadline, now + max(left, 0.0))
        with self._lock:
            self._cache[key] = (deadline, outcome)
            if len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)
        return outcome

    def _params(self) -> Any:
        from pyhanko_certvalidator import PKIXValidationParams

        initial = frozenset(
            "any_policy" if p in ("anyPolicy", "any", "2.5.29.32.0") else p
            for p in (self.policies or ("any_policy",))
        )
        return PKIXValidationParams(
            user_initial_policy_set=initial,
            initial_explicit_policy=self.require_explicit_policy,
            initial_policy_mapping_inhibit=self.inhibit_policy_mapping,
            initial_any_policy_inhibit=self.inhibit_any_policy,
        )

    def _evaluate(
        self,
        cert: x509.Certificate,
        extra: Sequence[x509.Certificate],
        msg_crls: Sequence[bytes],
        purpose: str,
        when: _dt.datetime | None,
        stime: _dt.datetime | None,
        timestamp: tuple[_dt.datetime, str] | None = None,
    ) -> TrustOutcome:
        problems = _purpose_problems(cert, purpose, allow_any_eku=self.allow_any_eku)
        if not self.allow_weak:
            weak = weak_key_problem(cert)
            if weak:
                problems.append(weak)
        moment = when or _dt.datetime.now(_dt.UTC)
        source = "given" if when is not None else "now"
        if not self.anchors:
            problems.append(
                Problem(Status.UNTRUSTED, "no trust anchor was given (use --trust CA.pem)")
            )
            report = ValidationReport(moment, source, self.revocation, False)
            return TrustOutcome(False, tuple(problems), (cert,), report)
        # imported here: path validation is needed once per chain, not for every import
        from asn1crypto import x509 as a_x509

        from mailseal.validation import _pkix
        from mailseal.validation._inputs import load_crl

        if self._der is None:
            self._der = ([_der(c) for c in self.anchors], [_der(c) for c in self.intermediates])
        # fresh asn1crypto objects for every validation: parsing one can change how it
        # re-encodes, and a second signature check on it may then fail (see _pkix)
        anchors_asn1 = [a_x509.Certificate.load(d) for d in self._der[0]]
        inter_asn1 = [a_x509.Certificate.load(d) for d in self._der[1]]
        if self.fetching and self._fetch_cache is None:
            assert self.fetcher is not None
            self._fetch_cache = _pkix.FetchCache(self.fetcher)
        others = [*inter_asn1, *(a_x509.Certificate.load(_der(c)) for c in extra)]
        if self.cache is not None:
            from mailseal.validation.cache import candidates

            others.extend(a_x509.Certificate.load(d) for d in candidates(self.cache, cert))
        notes: list[str] = []
        carried: list[tuple[Any, str]] = []
        for der in msg_crls:
            try:
                carried.extend((c, "message") for c in load_crl(der))
            except ValueError:
                notes.append("a CRL carried in the message cannot be read and was ignored")
        inputs = _pkix.PkixInputs(
            anchors=anchors_asn1,
            others=others,
            crls=[*carried, *self._crls],
            ocsps=list(self._ocsps),
            moment=moment,
            revocation=self.revocation,
            allow_weak=self.allow_weak,
            params=self._params(),
            cache=self._fetch_cache if self.fetching else None,
            fetch_issuers=self.fetch_issuers,
            leaf_label={
                "encrypt": "the recipient's certificate",
                "timestamp": "the TSA's certificate",
            }.get(purpose, "the signer's certificate"),
        )
        leaf = a_x509.Certificate.load(_der(cert))
        res = _run_sync(lambda: _pkix.validate(leaf, inputs))
        time_notes: list[str] = []
        expired = any(p.code is Status.EXPIRED for p in res.problems)
        if timestamp is not None and not (expired and timestamp[0] < moment):
            time_notes.append(f"timestamp by {timestamp[1]} at {timestamp[0].isoformat()}")
        elif timestamp is not None:
            from dataclasses import replace

            proven, tsa = timestamp
            then = _run_sync(
                lambda: _pkix.validate(leaf, replace(inputs, moment=proven, retroactive=True))
            )
            if not then.problems:
                time_notes.append(
                    f"valid when signed: timestamp by {tsa} at {proven.isoformat()}; "
                    + "; ".join(p.message for p in res.problems if p.code is Status.EXPIRED)
                )
                res, moment, source = then, proven, "timestamp"
                stime = None
            else:
                time_notes.append(
                    f"not valid at the timestamp time {proven.isoformat()} either: "
                    + "; ".join(p.message for p in then.problems)
                )
        if (
            stime is not None
            and stime < moment
            and any(p.code is Status.EXPIRED for p in res.problems)
        ):
            from dataclasses import replace

            then = _run_sync(
                lambda: _pkix.validate(leaf, replace(inputs, moment=stime, retroactive=True))
            )
            if not then.problems:
                time_notes.append(
                    f"valid when signed: validated at the signer's signingTime "
                    f"{stime.isoformat()} (trusted on request, not proven by a timestamp); "
                    + "; ".join(p.message for p in res.problems if p.code is Status.EXPIRED)
                )
                res, moment, source = then, stime, "signing-time"
            else:
                time_notes.append(
                    f"not valid at the signer's signingTime {stime.isoformat()} either: "
                    + "; ".join(p.message for p in then.problems)
                )
        problems.extend(res.problems)
        learnt = (
            self.cache.add([c.dump() for c in res.path[1:-1]])
            if self.cache is not None and res.anchor is not None and len(res.path) > 2
            else 0
        )
        if learnt:
            self._invalidate()
        path = tuple(x509.load_der_x509_certificate(c.dump()) for c in res.path) or (cert,)
        all_notes = (*notes, *res.notes, *time_notes)
        report = ValidationReport(
            time=moment,
            time_source=source,
            revocation_mode=self.revocation,
            revocation_checked=res.revocation_checked,
            revocation=tuple(res.evidence),
            anchor=res.anchor,
            missing_issuer=res.missing_issuer,
            policies=res.policies,
            notes=all_notes,
        )
        return TrustOutcome(not problems, tuple(problems), path, report, all_notes)

    def validate(
        self,
        cert: x509.Certificate,
        *,
        purpose: str = "sign",
        email: Sequence[str] | str | None = None,
        extra: Sequence[x509.Certificate] = (),
        crls: Sequence[bytes] = (),
    ) -> CertificateVerdict:
        """The verdict on a certificate by itself: for signing mail (``purpose="sign"``) or
        for encrypting to it (``"encrypt"``), optionally for the address ``email``."""
        if purpose not in ("sign", "encrypt"):
            raise UsageError(f"unknown purpose {purpose!r}; choose sign or encrypt")
        outcome = self.evaluate(cert, extra=extra, crls=crls, purpose=purpose)
        problems = list(outcome.problems)
        addresses = certificate_addresses(cert)
        matches: bool | None = None
        wanted = [email] if isinstance(email, str) else list(email or ())
        if wanted:
            matches = match_address(addresses, wanted)
            if not matches:
                problems.append(
                    Problem(
                        Status.ADDRESS_MISMATCH,
                        f"{', '.join(wanted)} is not in the certificate "
                        f"({', '.join(addresses) or 'no address'})",
                    )
                )
        status = worst([p.code for p in problems])
        return CertificateVerdict(
            status=status,
            purpose=purpose,
            problems=tuple(problems),
            certificate=cert,
            path=outcome.path,
            addresses=addresses,
            address_matches=matches,
            validation=outcome.report,
        )


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, also when the caller is itself
    inside a running event loop (then in a worker thread with a loop of its own)."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
