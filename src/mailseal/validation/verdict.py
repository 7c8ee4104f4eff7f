"""Verdicts are values (DESIGN.md rule 2).

A :class:`VerifyResult` holds one :class:`SignerVerdict` per SignerInfo. Each says separately
whether the signature is *intact* (the content is what was signed) and whether the signer is
*trusted* (a valid path to an anchor, fit for S/MIME), and lists every :class:`Problem` found.
The ``status`` strings are stable and documented in ``docs/verdicts.md``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailseal._values import quick_init
from mailseal.validation.certinfo import _safe, issuer_of, name_of
from mailseal.validation.encryption import EncryptionReport

__all__ = [
    "CertificateVerdict",
    "EncryptionReport",
    "Layer",
    "OpenResult",
    "Problem",
    "RevocationEvidence",
    "SignerVerdict",
    "Status",
    "ValidationReport",
    "VerifyResult",
]


class Status(StrEnum):
    """Outcome of a signature or a message. Order of severity is the order listed."""

    VALID = "valid"
    TAMPERED = "tampered"  # the content or the signed attributes do not match the signature
    SIGNER_UNKNOWN = "signer-unknown"  # the signer's certificate is not available
    UNSUPPORTED = "unsupported"  # an algorithm mailseal cannot check
    REVOKED = "revoked"
    UNTRUSTED = "untrusted"  # no valid path to a trust anchor
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    WRONG_PURPOSE = "wrong-purpose"  # key usage / extended key usage not fit for S/MIME
    WEAK_ALGORITHM = "weak-algorithm"
    ADDRESS_MISMATCH = "address-mismatch"  # no signer address matches the From header
    REVOCATION_UNKNOWN = "revocation-unknown"
    UNSIGNED = "unsigned"  # a message without any signature
    PARTIAL = "partially-protected"  # S/MIME parts inside an unprotected wrapper


_SEVERITY = {s: i for i, s in enumerate(Status)}


def worst(statuses: list[Status]) -> Status:
    bad = [s for s in statuses if s is not Status.VALID]
    if not bad:
        return Status.VALID
    return min(bad, key=_SEVERITY.__getitem__)


@quick_init
@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a signature is not fully valid: a stable ``code`` and a sentence."""

    code: Status
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _cert_json(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": name_of(cert),
        "issuer": issuer_of(cert),
        "serial": _safe(lambda: format(cert.serial_number, "x")),
        "not_before": _safe(lambda: cert.not_valid_before_utc.isoformat()),
        "not_after": _safe(lambda: cert.not_valid_after_utc.isoformat()),
        "sha256": _fingerprint(cert),
    }


def _iso(when: _dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


@quick_init
@dataclass(frozen=True, slots=True)
class RevocationEvidence:
    """What was established about the revocation status of one certificate on the path.

    ``status`` is ``good``, ``revoked``, ``unknown`` (looked for, not established) or
    ``not-checked`` (revocation checking is off). ``source`` is ``crl`` or ``ocsp`` when a
    CRL or an OCSP response decided; ``origin`` says where it came from (``message``,
    ``supplied`` or ``fetched``).
    """

    subject: str
    serial: str
    status: str
    detail: str
    source: str | None = None
    origin: str | None = None
    issuer: str | None = None  # the CRL issuer or the OCSP responder
    this_update: _dt.datetime | None = None
    next_update: _dt.datetime | None = None
    revoked_at: _dt.datetime | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "serial": self.serial,
            "status": self.status,
            "source": self.source,
            "origin": self.origin,
            "issuer": self.issuer,
            "this_update": _iso(self.this_update),
            "next_update": _iso(self.next_update),
            "revoked_at": _iso(self.revoked_at),
            "reason": self.reason,
            "detail": self.detail,
        }


@quick_init
@dataclass(frozen=True, slots=True)
class ValidationReport:
    """How a certificate was validated: at what time, with which revocation policy, and the
    revocation evidence for each certificate on the path (signer first).

    ``time_source`` is ``now``, ``given`` (a validation time chosen by the caller),
    ``signing-time`` (the signer's signingTime attribute, trusted on request) or
    ``timestamp`` (an RFC 3161 timestamp). ``revocation_checked`` is true only when the
    status of every certificate below the trust anchor was established.
    """

    time: _dt.datetime
    time_source: str
    revocation_mode: str
    revocation_checked: bool
    revocation: tuple[RevocationEvidence, ...] = ()
    anchor: str | None = None
    missing_issuer: str | None = None
    policies: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "time_source": self.time_source,
            "revocation_mode": self.revocation_mode,
            "revocation_checked": self.revocation_checked,
            "revocation": [e.to_json() for e in self.revocation],
            "anchor": self.anchor,
            "missing_issuer": self.missing_issuer,
            "policies": list(self.policies),
            "notes": list(self.notes),
        }


def _revocation_remark(report: ValidationReport | None) -> str:
    if report is None or report.revocation_checked:
        return ""
    if report.revocation_mode == "off":
        return "; revocation not checked (off)"
    return "; revocation not checked"


@quick_init
@dataclass(frozen=True, slots=True)
class SignerVerdict:
    """The verdict on one SignerInfo."""

    index: int
    status: Status
    intact: bool
    trusted: bool
    problems: tuple[Problem, ...]
    signer_id: str
    certificate: x509.Certificate | None
    path: tuple[x509.Certificate, ...]
    addresses: tuple[str, ...]
    address_matches_from: bool | None
    signing_time: _dt.datetime | None
    digest_algorithm: str
    signature_algorithm: str
    capabilities: tuple[str, ...] = ()
    encryption_key_preference: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: how the certificate was validated (None when no certificate was available)
    validation: ValidationReport | None = None

    @property
    def valid(self) -> bool:
        return self.status is Status.VALID

    def describe(self) -> str:
        who = (
            self.addresses[0]
            if self.addresses
            else (name_of(self.certificate) if self.certificate else self.signer_id)
        )
        if self.valid:
            when = f", signed {self.signing_time.isoformat()}" if self.signing_time else ""
            algs = f"{self.digest_algorithm}, {self.signature_algorithm}"
            then = ""
            if self.validation is not None and self.validation.time_source in (
                "signing-time",
                "timestamp",
            ):
                then = f"; valid when signed ({self.validation.time_source})"
            return (
                f"valid signature by {who} ({algs}{when}){then}"
                f"{_revocation_remark(self.validation)}"
            )
        reasons = "; ".join(p.message for p in self.problems) or self.status.value
        return f"{self.status.value}: signature by {who}: {reasons}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status.value,
            "intact": self.intact,
            "trusted": self.trusted,
            "problems": [p.to_json() for p in self.problems],
            "signer_id": self.signer_id,
            "certificate": _cert_json(self.certificate) if self.certificate else None,
            "path": [_cert_json(c) for c in self.path],
            "addresses": list(self.addresses),
            "address_matches_from": self.address_matches_from,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "digest_algorithm": self.digest_algorithm,
            "signature_algorithm": self.signature_algorithm,
            "capabilities": list(self.capabilities),
            "encryption_key_preference": self.encryption_key_preference,
            "notes": list(self.notes),
            "validation": self.validation.to_json() if self.validation else None,
        }


@quick_init
@dataclass(frozen=True, slots=True)
class CertificateVerdict:
    """The verdict on a certificate on its own (``mailseal validate``, recipient checks)."""

    status: Status
    purpose: str  # "sign" or "encrypt"
    problems: tuple[Problem, ...]
    certificate: x509.Certificate
    path: tuple[x509.Certificate, ...]
    addresses: tuple[str, ...]
    address_matches: bool | None
    validation: ValidationReport | None = None

    @property
    def valid(self) -> bool:
        return self.status is Status.VALID

    def describe(self) -> str:
        who = self.addresses[0] if self.addresses else name_of(self.certificate)
        use = "signing" if self.purpose == "sign" else "encryption"
        if self.valid:
            return f"valid {use} certificate of {who}{_revocation_remark(self.validation)}"
        reasons = "; ".join(p.message for p in self.problems) or self.status.value
        return f"{self.status.value}: {use} certificate of {who}: {reasons}"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "valid": self.valid,
            "purpose": self.purpose,
            "problems": [p.to_json() for p in self.problems],
            "certificate": _cert_json(self.certificate),
            "path": [_cert_json(c) for c in self.path],
            "addresses": list(self.addresses),
            "address_matches": self.address_matches,
            "validation": self.validation.to_json() if self.validation else None,
        }


@quick_init
@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The verdict on a signed message."""

    status: Status
    form: str  # "detached", "opaque" or "none"
    signers: tuple[SignerVerdict, ...]
    content: bytes | None
    certificates: tuple[x509.Certificate, ...]
    from_addresses: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.status is Status.VALID and bool(self.signers)

    @property
    def tampered(self) -> bool:
        return any(not s.intact for s in self.signers)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "valid": self.valid,
            "form": self.form,
            "from": list(self.from_addresses),
            "signers": [s.to_json() for s in self.signers],
            "certificates": [_cert_json(c) for c in self.certificates],
            "notes": list(self.notes),
        }


@quick_init
@dataclass(frozen=True, slots=True)
class Layer:
    """One S/MIME layer peeled by ``open``, outermost first.

    ``kind`` is ``encrypted``, ``signed``, ``compressed`` or ``unprotected`` (a non-S/MIME
    wrapper whose parts are only partly protected). ``status`` is ``valid`` for a layer that
    did its job; for ``signed`` it is the signature verdict.
    """

    kind: str
    status: Status
    summary: str
    authenticated: bool | None = None  # encrypted layers: AEAD (GCM) or not (CBC)
    cipher: str | None = None
    recipients: tuple[str, ...] = ()
    opened_by: str | None = None
    verification: VerifyResult | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "status": self.status.value,
            "summary": self.summary,
            "notes": list(self.notes),
        }
        if self.kind == "encrypted":
            out.update(
                authenticated=self.authenticated,
                cipher=self.cipher,
                recipients=list(self.recipients),
                opened_by=self.opened_by,
            )
        if self.verification is not None:
            out["signature"] = self.verification.to_json()
        return out


@quick_init
@dataclass(frozen=True, slots=True)
class OpenResult:
    """The verdict on a message peeled by ``open``: one :class:`Layer` per S/MIME layer."""

    status: Status
    layers: tuple[Layer, ...]
    content: bytes | None
    #: the outermost message's transport headers (From, To, Subject, ...), CRLF-terminated
    transport_headers: bytes = b""

    @property
    def valid(self) -> bool:
        return self.status is Status.VALID

    @property
    def signed(self) -> bool:
        """A valid signature covers the whole content (no unprotected wrapper above it)."""
        return any(
            layer.kind == "signed" and layer.status is Status.VALID for layer in self.layers
        ) and not any(layer.kind == "unprotected" for layer in self.layers)

    @property
    def encrypted(self) -> bool:
        return any(layer.kind == "encrypted" for layer in self.layers)

    @property
    def authenticated(self) -> bool:
        """The content was integrity-protected: AEAD encryption or a valid signature."""
        return self.signed or any(
            layer.kind == "encrypted" and layer.authenticated for layer in self.layers
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "valid": self.valid,
            "signed": self.signed,
            "encrypted": self.encrypted,
            "authenticated": self.authenticated,
            "layers": [layer.to_json() for layer in self.layers],
        }
