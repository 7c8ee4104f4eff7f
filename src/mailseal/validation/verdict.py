"""Verdicts are values (DESIGN.md rule 2).

A :class:`VerifyResult` holds one :class:`SignerVerdict` per SignerInfo. Each says separately
whether the signature is *intact* (the content is what was signed) and whether the signer is
*trusted* (a valid path to an anchor, fit for S/MIME), and lists every :class:`Problem` found.
The ``status`` strings are stable and documented in ``docs/verdicts.md``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

__all__ = [
    "EncryptionReport",
    "Layer",
    "OpenResult",
    "Problem",
    "SignerVerdict",
    "Status",
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a signature is not fully valid: a stable ``code`` and a sentence."""

    code: Status
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _safe(fn: Callable[[], str]) -> str:
    """A certificate field as text, or a placeholder when the field cannot be decoded."""
    try:
        return fn()
    except Exception:  # hostile certificates carried in a message
        return "(undecodable)"


def name_of(cert: x509.Certificate) -> str:
    return _safe(lambda: cert.subject.rfc4514_string())


def issuer_of(cert: x509.Certificate) -> str:
    return _safe(lambda: cert.issuer.rfc4514_string())


def _cert_json(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": name_of(cert),
        "issuer": issuer_of(cert),
        "serial": _safe(lambda: format(cert.serial_number, "x")),
        "not_before": _safe(lambda: cert.not_valid_before_utc.isoformat()),
        "not_after": _safe(lambda: cert.not_valid_after_utc.isoformat()),
        "sha256": _fingerprint(cert),
    }


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
            return f"valid signature by {who} ({algs}{when})"
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
        }


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


@dataclass(frozen=True, slots=True)
class EncryptionReport:
    """What ``encrypt``/``seal`` chose: the content cipher and, per recipient, the key
    transport or agreement used."""

    cipher: str
    smime_type: str
    recipients: tuple[tuple[str, str], ...]  # (who, how)
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cipher": self.cipher,
            "smime_type": self.smime_type,
            "recipients": [{"recipient": w, "key_management": h} for w, h in self.recipients],
            "reason": self.reason,
        }


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
