"""The audit log: its key, signed checkpoints, verification and reading.

The chain itself is in :mod:`mailseal.store.audit`. Here:

- :func:`audit_key` — the chain's HMAC key, 32 random bytes in ``<home>/audit.key`` (0600),
  created with the organisation. It never enters the database, so a database administrator
  cannot forge an event that verifies.
- :func:`checkpoint` — the issuing CA's key signs the chain's head (event id and hash). The
  server does it on its refresh schedule when events were added; CA commands do it when they
  finish; ``mailseal audit checkpoint`` does it on demand.
- :func:`verify` — walks the whole chain and every checkpoint and names the first event that
  was changed, removed, inserted or reordered.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from mailseal.config import Settings
from mailseal.errors import UsageError
from mailseal.keys.base import SignatureScheme
from mailseal.keys.software import hash_algorithm
from mailseal.pki.signing import scheme_for
from mailseal.store import audit as chain

if TYPE_CHECKING:
    from mailseal.lifecycle.authority import Authority

__all__ = ["AuditReport", "audit_key", "checkpoint", "events", "verify"]

AUDIT_KEY_FILE = "audit.key"


def audit_key(settings: Settings, *, create: bool = True) -> bytes:
    """The organisation's audit key (made on first use when ``create``)."""
    path = Path(settings.home) / AUDIT_KEY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise UsageError(
                f"the audit key {path} is missing: copy it from a backup of the data directory"
            ) from None
        data = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return data
    except OSError as exc:
        raise UsageError(f"cannot read the audit key {path}: {exc.strerror}") from None
    if len(data) != 32:
        raise UsageError(f"the audit key {path} is damaged (not 32 bytes)")
    return data


# -- checkpoints ----------------------------------------------------------------------------------
def _verify_signature(cert: x509.Certificate, signature: bytes, data: bytes) -> None:
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        pub.verify(signature, data, padding.PKCS1v15(), hash_algorithm("sha256"))
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        hash_name = {256: "sha256", 384: "sha384"}.get(pub.curve.key_size, "sha512")
        pub.verify(signature, data, ec.ECDSA(hash_algorithm(hash_name)))
    elif isinstance(pub, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        pub.verify(signature, data)
    else:
        raise InvalidSignature("unsupported checkpoint key")


def _scheme(key: Any) -> SignatureScheme:
    if key.key_type == "ec":
        size = key.key_size
        return SignatureScheme("ecdsa", {256: "sha256", 384: "sha384"}.get(size, "sha512"))  # type: ignore[arg-type]
    if key.key_type == "rsa":
        return SignatureScheme("rsa-pkcs1", "sha256")
    return scheme_for(key)


def checkpoint(authority: Authority, *, signer: str = "issuing") -> int | None:
    """Sign the chain's head with CA ``signer``'s key; returns the event id sealed, or None
    when there is nothing new since the last checkpoint."""
    key = authority.key(signer)
    cert_der = authority.ca_certificate(signer)
    assert cert_der is not None
    with authority.db.session() as s:
        last_id, last_hash = chain.head(s)
        if last_id == 0:
            return None
        done = chain.checkpoints(s)
        if done and done[-1].event_id >= last_id:
            return None
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        message = chain.checkpoint_message(last_id, last_hash, now)
        signature = key.sign(message, _scheme(key))
        chain.add_checkpoint(
            s,
            event_id=last_id,
            entry_hash=last_hash,
            signer=signer,
            certificate_der=cert_der,
            signature=signature,
            at=now,
        )
    return last_id


# -- verification ---------------------------------------------------------------------------------
@dataclass
class AuditReport:
    """The result of :func:`verify`."""

    events: int = 0
    checkpoints: int = 0
    last_checkpoint: int | None = None
    head: str = ""
    problem: chain.ChainProblem | None = None
    checkpoint_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.checkpoint_problems

    @property
    def unsealed(self) -> int:
        """Events after the last checkpoint (protected by the chain and the audit key only)."""
        return self.events - (self.last_checkpoint or 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "last_checkpoint": self.last_checkpoint,
            "unsealed": self.unsealed if self.problem is None else None,
            "head": self.head,
            "problem": None
            if self.problem is None
            else {
                "entry": self.problem.event_id,
                "kind": self.problem.kind,
                "message": self.problem.message,
            },
            "checkpoint_problems": list(self.checkpoint_problems),
        }


def verify(authority: Authority, *, trusted: list[x509.Certificate] | None = None) -> AuditReport:
    """Check the chain from the first event to the last and every checkpoint. Checkpoints must
    be signed by a CA certificate of this organisation (or one of ``trusted``)."""
    key = authority.db.audit_key
    ours = {_ca_file_der(authority, name) for name in authority.cas} | {
        c.public_bytes(Encoding.DER) for c in trusted or []
    }
    report = AuditReport()
    marks: dict[int, bytes] = {}
    with authority.db.session(readonly=True) as s:
        for cp in chain.checkpoints(s):
            label = f"checkpoint {cp.id} (entry {cp.event_id}, {cp.at:%Y-%m-%d %H:%M:%S})"
            der = bytes(cp.certificate_der)
            if der not in ours:
                report.checkpoint_problems.append(f"{label} is signed by an unknown certificate")
                continue
            try:
                cert = x509.load_der_x509_certificate(der)
                _verify_signature(
                    cert,
                    bytes(cp.signature),
                    chain.checkpoint_message(cp.event_id, bytes(cp.entry_hash), cp.at),
                )
            except (InvalidSignature, ValueError, TypeError):
                report.checkpoint_problems.append(f"{label}: the signature does not verify")
                continue
            if cp.event_id in marks and marks[cp.event_id] != bytes(cp.entry_hash):
                report.checkpoint_problems.append(f"{label} contradicts an earlier checkpoint")
                continue
            marks[cp.event_id] = bytes(cp.entry_hash)
            report.checkpoints += 1
            report.last_checkpoint = max(report.last_checkpoint or 0, cp.event_id)
        count, head, problem = chain.check_chain(chain.iter_events(s), key, checkpoints=marks)
    report.events = count
    report.head = head.hex()
    report.problem = problem
    if problem is None and report.last_checkpoint is not None and report.last_checkpoint > count:
        report.problem = chain.ChainProblem(
            count + 1,
            "removed",
            f"entries {count + 1}–{report.last_checkpoint} were removed"
            f" (a checkpoint signed the log up to entry {report.last_checkpoint})",
        )
    return report


def _ca_file_der(authority: Authority, name: str) -> bytes:
    """CA ``name``'s certificate as the data directory has it (the database's copy when the
    file is missing)."""
    path = Path(authority.settings.home) / "ca" / f"{name}.crt"
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
    except (OSError, ValueError):
        der = authority.ca_certificate(name)
        assert der is not None
        return der


def events(
    authority: Authority, *, since: _dt.datetime | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Audit events in order (from ``since``), as dictionaries."""
    with authority.db.session(readonly=True) as s:
        return [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "outcome": e.outcome,
                "details": e.details,
                "hash": (e.entry_hash or b"").hex(),
            }
            for e in chain.list_events(s, since=since, limit=limit)
        ]
