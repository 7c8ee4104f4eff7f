"""Trust in a signer's certificate: a path to an anchor (RFC 5280, via pyhanko-certvalidator),
fitness for S/MIME (RFC 8550 §4.4), and the signer's mail addresses.

:class:`Trust` is reusable and caches path validation results for unchanged chains for a
short while, so verifying many messages from the same senders costs one validation each.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from mailseal.asn1 import oids as O
from mailseal.validation.verdict import Problem, Status, issuer_of

if TYPE_CHECKING:
    from asn1crypto import x509 as a_x509

__all__ = ["Trust", "TrustOutcome", "certificate_addresses", "match_address"]

_T = TypeVar("_T")
_SMTP_UTF8 = ObjectIdentifier(O.SMTP_UTF8_MAILBOX)
_CACHE_SECONDS = 60.0
_CACHE_MAX = 4096


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def certificate_addresses(cert: x509.Certificate) -> tuple[str, ...]:
    """rfc822Name and SmtpUTF8Mailbox SAN entries, then subject emailAddress values."""
    out: list[str] = []
    with contextlib.suppress(Exception):  # undecodable extensions or names: what was found
        _collect_addresses(cert, out)
    seen: dict[str, None] = {}
    for a in out:
        seen.setdefault(a, None)
    return tuple(seen)


def _collect_addresses(cert: x509.Certificate, out: list[str]) -> None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out.extend(san.get_values_for_type(x509.RFC822Name))
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == _SMTP_UTF8:
                raw = other.value
                # UTF8String TLV: tag 0x0C, short or long length
                if raw[:1] == b"\x0c":
                    n = raw[1]
                    body = raw[2:] if n < 0x80 else raw[2 + (n & 0x7F) :]
                    out.append(body.decode("utf-8", "replace"))
    except (x509.ExtensionNotFound, ValueError):
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
        out.append(value)


def match_address(candidates: Iterable[str], wanted: Iterable[str]) -> bool:
    """True when an address matches: local part exactly, domain case-insensitively."""

    def norm(a: str) -> tuple[str, str]:
        local, _, domain = a.strip().rpartition("@")
        return local, domain.lower().rstrip(".")

    have = {norm(a) for a in candidates if "@" in a}
    return any(norm(w) in have for w in wanted if "@" in w)


@dataclass(frozen=True, slots=True)
class TrustOutcome:
    trusted: bool
    problems: tuple[Problem, ...]
    path: tuple[x509.Certificate, ...]


def _purpose_problems(
    cert: x509.Certificate, purpose: str, *, allow_any_eku: bool
) -> list[Problem]:
    problems: list[Problem] = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    except Exception as exc:  # ValueError, x509.DuplicateExtension, ...
        return [Problem(Status.WRONG_PURPOSE, f"the key usage extension is malformed ({exc})")]
    if ku is not None:
        if purpose == "sign" and not (ku.digital_signature or ku.content_commitment):
            problems.append(
                Problem(
                    Status.WRONG_PURPOSE,
                    "the certificate's key usage allows neither digitalSignature nor "
                    "nonRepudiation",
                )
            )
        if purpose == "encrypt" and not (ku.key_encipherment or ku.key_agreement):
            problems.append(
                Problem(
                    Status.WRONG_PURPOSE,
                    "the certificate's key usage allows neither keyEncipherment nor keyAgreement",
                )
            )
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    except Exception as exc:
        return [*problems, Problem(Status.WRONG_PURPOSE, f"the EKU extension is malformed ({exc})")]
    if eku is not None:
        usages = list(eku)
        ok = ExtendedKeyUsageOID.EMAIL_PROTECTION in usages or (
            allow_any_eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
        )
        if not ok:
            problems.append(
                Problem(
                    Status.WRONG_PURPOSE,
                    "the certificate's extended key usage does not include emailProtection",
                )
            )
    return problems


def weak_key_problem(cert: x509.Certificate) -> Problem | None:
    try:
        pub = cert.public_key()
    except Exception:  # an unknown key algorithm: the signature check reports it
        return None
    if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < 2048:
        return Problem(Status.WEAK_ALGORITHM, f"the signer's RSA key has only {pub.key_size} bits")
    if isinstance(pub, dsa.DSAPublicKey):
        return Problem(Status.WEAK_ALGORITHM, "the signer uses a DSA key")
    return None


class Trust:
    """Trust anchors, extra intermediates and policy, with a validation cache.

    ``at`` fixes the validation time (default: now). ``allow_any_eku`` accepts
    anyExtendedKeyUsage in place of emailProtection; ``allow_weak`` accepts SHA-1/MD5
    signatures and RSA keys under 2048 bits; ``check_address=False`` skips the From check.
    """

    def __init__(
        self,
        anchors: Sequence[x509.Certificate] = (),
        *,
        intermediates: Sequence[x509.Certificate] = (),
        at: _dt.datetime | None = None,
        allow_any_eku: bool = False,
        allow_weak: bool = False,
        check_address: bool = True,
    ) -> None:
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        self.at = at
        self.allow_any_eku = allow_any_eku
        self.allow_weak = allow_weak
        self.check_address = check_address
        self._asn1: tuple[list[a_x509.Certificate], list[a_x509.Certificate]] | None = None
        self._cache: OrderedDict[tuple[object, ...], tuple[float, TrustOutcome]] = OrderedDict()

    def evaluate(
        self,
        cert: x509.Certificate,
        *,
        extra: Sequence[x509.Certificate] = (),
        purpose: str = "sign",
        at: _dt.datetime | None = None,
    ) -> TrustOutcome:
        """Path, validity dates and S/MIME purpose for ``cert``."""
        when = at or self.at
        key = (cert, frozenset(extra), purpose, when)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and (when is not None or now - hit[0] < _CACHE_SECONDS):
            self._cache.move_to_end(key)
            return hit[1]
        try:
            outcome = self._evaluate(cert, _der(cert), extra, purpose, when)
        except Exception as exc:  # a certificate that cannot be decoded along the way
            outcome = TrustOutcome(
                False,
                (Problem(Status.UNTRUSTED, f"the certificate chain cannot be read ({exc})"),),
                (cert,),
            )
        self._cache[key] = (now, outcome)
        if len(self._cache) > _CACHE_MAX:
            self._cache.popitem(last=False)
        return outcome

    def _evaluate(
        self,
        cert: x509.Certificate,
        leaf_der: bytes,
        extra: Sequence[x509.Certificate],
        purpose: str,
        when: _dt.datetime | None,
    ) -> TrustOutcome:
        problems = _purpose_problems(cert, purpose, allow_any_eku=self.allow_any_eku)
        if not self.allow_weak:
            weak = weak_key_problem(cert)
            if weak:
                problems.append(weak)
        if not self.anchors:
            problems.append(
                Problem(Status.UNTRUSTED, "no trust anchor was given (use --trust CA.pem)")
            )
            return TrustOutcome(False, tuple(problems), (cert,))
        # imported here: path validation is needed once per chain, not for every import
        from asn1crypto import x509 as a_x509
        from pyhanko_certvalidator import CertificateValidator, ValidationContext
        from pyhanko_certvalidator import errors as pv_errors

        if self._asn1 is None:
            self._asn1 = (
                [a_x509.Certificate.load(_der(c)) for c in self.anchors],
                [a_x509.Certificate.load(_der(c)) for c in self.intermediates],
            )
        anchors_asn1, inter_asn1 = self._asn1
        others = [*inter_asn1, *(a_x509.Certificate.load(_der(c)) for c in extra)]
        ctx = ValidationContext(
            trust_roots=anchors_asn1,
            other_certs=others,
            moment=when,
            allow_fetching=False,
            revocation_mode="soft-fail",
            weak_hash_algos=set() if self.allow_weak else {"md5", "sha1"},
        )
        validator = CertificateValidator(
            a_x509.Certificate.load(leaf_der), intermediate_certs=others, validation_context=ctx
        )
        path: tuple[x509.Certificate, ...] = (cert,)
        try:
            vpath = _run_sync(validator.async_validate_path)
            path = tuple(
                x509.load_der_x509_certificate(c.dump())
                for c in reversed(list(vpath))
                if hasattr(c, "dump")
            )
        except pv_errors.ExpiredError as exc:
            problems.append(Problem(Status.EXPIRED, _clean(exc)))
        except pv_errors.NotYetValidError as exc:
            problems.append(Problem(Status.NOT_YET_VALID, _clean(exc)))
        except pv_errors.RevokedError as exc:
            problems.append(Problem(Status.REVOKED, _clean(exc)))
        except pv_errors.DisallowedAlgorithmError as exc:
            problems.append(Problem(Status.WEAK_ALGORITHM, _clean(exc)))
        except pv_errors.PathBuildingError:
            problems.append(
                Problem(
                    Status.UNTRUSTED,
                    f"no path from {issuer_of(cert)!r} to a trust anchor",
                )
            )
        except (pv_errors.PathValidationError, pv_errors.ValidationError) as exc:
            problems.append(Problem(Status.UNTRUSTED, _clean(exc)))
        except Exception as exc:  # a malformed certificate deep in the chain
            problems.append(Problem(Status.UNTRUSTED, f"the chain cannot be validated ({exc})"))
        trusted = not problems
        return TrustOutcome(trusted, tuple(problems), path)


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


def _clean(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[0].lower() + text[1:] if text else text
