"""The tables of the internal CA, as SQLAlchemy 2.0 typed declarative models.

The schema itself is created and changed only by the Alembic migrations shipped in
``mailseal/store/migrations``; these models must stay in step with them (a test compares the
two on SQLite and PostgreSQL).

Closed vocabularies (roles, statuses, usages, revocation reasons, job states) are plain strings
guarded by CHECK constraints, so the database refuses a value the code does not know.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mailseal.store.types import BigID, JSONValue, UTCDateTime, utcnow

__all__ = [
    "CA",
    "CA_ROLES",
    "CA_STATUSES",
    "CERT_STATUSES",
    "CERT_USAGES",
    "CRL",
    "JOB_STATES",
    "REQUEST_STATES",
    "REVOCATION_REASONS",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "CARole",
    "CAStatus",
    "CertStatus",
    "CertUsage",
    "Certificate",
    "EscrowRecord",
    "EscrowSet",
    "Job",
    "JobState",
    "Mailbox",
    "OCSPResponse",
    "Person",
    "RecoveryApproval",
    "RecoveryRequest",
    "Revocation",
]

CARole = Literal["root", "issuing"]
CAStatus = Literal["active", "retired", "revoked"]
CertUsage = Literal["signing", "encryption", "dual"]
CertStatus = Literal["valid", "revoked"]
JobState = Literal["queued", "running", "done", "failed"]

CA_ROLES: Final = ("root", "issuing")
CA_STATUSES: Final = ("active", "retired", "revoked")
CERT_USAGES: Final = ("signing", "encryption", "dual")
CERT_STATUSES: Final = ("valid", "revoked")
JOB_STATES: Final = ("queued", "running", "done", "failed")
#: a recovery request: open (collecting approvals), ready (the quorum is in), delivered,
#: expired or cancelled (the last three are final)
REQUEST_STATES: Final = ("open", "ready", "delivered", "expired", "cancelled")
ESCROW_MODES: Final = ("threshold", "hsm")
#: RFC 5280 §5.3.1 CRLReason names, spelt as in the RFC (and as cryptography's
#: ``x509.ReasonFlags`` values).
REVOCATION_REASONS: Final = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
)

# Deterministic constraint names, so that migrations can refer to them on every database.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base of every store table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CA(Base):
    """A certificate authority of the internal PKI. ``key_ref`` says where the private key
    lives (a file path or a PKCS#11 URI); key material is never stored here."""

    __tablename__ = "cas"
    __table_args__ = (
        CheckConstraint(_one_of("role", CA_ROLES), name="role"),
        CheckConstraint(_one_of("status", CA_STATUSES), name="status"),
        CheckConstraint("crl_number >= 0", name="crl_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(Text)
    key_ref: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the number of the last CRL issued (0: none yet); see ``repo.next_crl_number``
    crl_number: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<CA {self.id} {self.name!r} {self.role}>"


class Person(Base):
    """Someone who holds certificates, through one or more mailboxes."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    mailboxes: Mapped[list[Mailbox]] = relationship(back_populates="person")

    def __repr__(self) -> str:
        return f"<Person {self.id} {self.name!r}>"


class Mailbox(Base):
    """An e-mail address, stored lower-cased, belonging to one person."""

    __tablename__ = "mailboxes"
    __table_args__ = (CheckConstraint("address = lower(address)", name="address_lower"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    person: Mapped[Person] = relationship(back_populates="mailboxes")

    def __repr__(self) -> str:
        return f"<Mailbox {self.id} {self.address!r}>"


class Certificate(Base):
    """A certificate issued by one of our CAs.

    ``serial`` is lower-case hexadecimal without leading zeros; UNIQUE(ca_id, serial) is what
    makes issuing one serial twice impossible, even for two processes issuing at once.
    ``key_ref`` points at a server-generated encryption key kept for escrow (or is null).
    """

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial"),
        CheckConstraint(_one_of("usage", CERT_USAGES), name="usage"),
        CheckConstraint(_one_of("status", CERT_STATUSES), name="status"),
        Index("ix_certificates_status_not_after", "status", "not_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(Text)
    #: subjectAltName entries (e-mail addresses first), as a JSON list of strings
    sans: Mapped[list[str]] = mapped_column(JSONValue)
    profile: Mapped[str] = mapped_column(String(64))
    usage: Mapped[str] = mapped_column(String(16))
    key_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="valid")
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    key_ref: Mapped[str | None] = mapped_column(Text)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ca: Mapped[CA] = relationship()
    mailbox: Mapped[Mailbox | None] = relationship()
    revocation: Mapped[Revocation | None] = relationship(back_populates="certificate")

    def __repr__(self) -> str:
        return f"<Certificate {self.id} ca={self.ca_id} serial={self.serial} {self.status}>"


class Revocation(Base):
    """The revocation of one certificate. ``crl_number`` is the number of the first CRL that
    listed it (null until one did)."""

    __tablename__ = "revocations"
    __table_args__ = (CheckConstraint(_one_of("reason", REVOCATION_REASONS), name="reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    invalidity_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    crl_number: Mapped[int | None] = mapped_column(BigInteger)

    certificate: Mapped[Certificate] = relationship(back_populates="revocation")

    def __repr__(self) -> str:
        return f"<Revocation cert={self.certificate_id} {self.reason}>"


class CRL(Base):
    """An issued CRL; ``delta_base`` is set for a delta CRL (the number of its base CRL)."""

    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("ca_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    delta_base: Mapped[int | None] = mapped_column(BigInteger)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<CRL ca={self.ca_id} number={self.number}>"


class OCSPResponse(Base):
    """A pre-signed OCSP response, one per (CA, serial), replaced when re-signed."""

    __tablename__ = "ocsp_responses"
    __table_args__ = (UniqueConstraint("ca_id", "serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial: Mapped[str] = mapped_column(String(64))
    produced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<OCSPResponse ca={self.ca_id} serial={self.serial}>"


class Job(Base):
    """A unit of background work. A worker claims a queued job whose ``run_after`` has come
    (``state`` becomes running, ``locked_by``/``locked_at`` are set) and finishes it."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_one_of("state", JOB_STATES), name="state"),
        Index("ix_jobs_state_run_after", "state", "run_after"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.state}>"


class AuditEvent(Base):
    """One line of the audit log: who did what to what, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    #: ok, refused or failed
    outcome: Mapped[str] = mapped_column(String(16), default="ok", server_default="ok")
    #: the chain (see mailseal.store.audit): this entry's MAC over its content and the
    #: previous entry's
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    entry_hash: Mapped[bytes | None] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.actor} {self.action}>"


class EscrowSet(Base):
    """An escrow key: its public key, threshold, officers (by name, index = position + 1) and
    their verification points. Nothing here opens a record (see mailseal.escrow.threshold).

    ``mode`` is ``threshold`` (the key exists only as officers' shares) or ``hsm`` (the key is
    in an HSM at ``key_ref``; officers approve with the signing keys in ``approval_keys``).
    A set replaced by re-sharing is retired (``retired_at``, ``replaced_by``: the new set id);
    its records have moved to the new set."""

    __tablename__ = "escrow_sets"
    __table_args__ = (CheckConstraint(_one_of("mode", ESCROW_MODES), name="mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[str] = mapped_column(String(32), unique=True)
    threshold: Mapped[int] = mapped_column(Integer)
    officers: Mapped[list[str]] = mapped_column(JSONValue)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    verification: Mapped[list[str]] = mapped_column(JSONValue)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mode: Mapped[str] = mapped_column(String(16), default="threshold", server_default="threshold")
    key_ref: Mapped[str | None] = mapped_column(Text)
    approval_keys: Mapped[list[str] | None] = mapped_column(JSONValue)
    #: per officer, how the share was protected ("passphrase", or "certificate <sha256>")
    protection: Mapped[list[str] | None] = mapped_column(JSONValue)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by: Mapped[str | None] = mapped_column(String(32))


class EscrowRecord(Base):
    """An archived encryption private key, sealed to an escrow set (one per certificate).

    A key issued here points at its ``certificate``; an imported one (``source`` imported)
    may come from another CA and then carries its own ``certificate_der`` and ``mailbox``.
    ``fingerprint`` (SHA-256 of the certificate) makes archiving one certificate twice
    impossible. Threshold records hold ``ephemeral`` (R) and ``masked`` (E); HSM records hold
    ``wrapped_key`` (and ``ephemeral`` when the HSM key is an EC key)."""

    __tablename__ = "escrow_records"
    __table_args__ = (CheckConstraint("source IN ('issued', 'imported')", name="source"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    escrow_set_id: Mapped[int] = mapped_column(ForeignKey("escrow_sets.id"))
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), unique=True)
    ephemeral: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    masked: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(16), default="issued", server_default="issued")
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"), index=True)
    certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True)

    escrow_set: Mapped[EscrowSet] = relationship()
    certificate: Mapped[Certificate | None] = relationship()
    mailbox: Mapped[Mailbox | None] = relationship()


class RecoveryRequest(Base):
    """A request to recover archived keys: who asked, why, for which records, until when;
    ``delivery`` holds the public half of the requester's delivery key and its KDF salt and
    cost (never the password or the private half)."""

    __tablename__ = "recovery_requests"
    __table_args__ = (CheckConstraint(_one_of("state", REQUEST_STATES), name="state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    escrow_set_id: Mapped[int] = mapped_column(ForeignKey("escrow_sets.id"))
    email: Mapped[str] = mapped_column(String(320))
    requester: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    #: the ids of the escrow records asked for
    records: Mapped[list[int]] = mapped_column(JSONValue)
    state: Mapped[str] = mapped_column(String(16), default="open")
    delivery: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    escrow_set: Mapped[EscrowSet] = relationship()
    approvals: Mapped[list[RecoveryApproval]] = relationship(
        back_populates="request", order_by="RecoveryApproval.officer_index"
    )


class RecoveryApproval(Base):
    """One officer's approval of a request: in threshold mode their partial decryptions sealed
    to the requester's delivery key; in HSM mode their signature over the request."""

    __tablename__ = "recovery_approvals"
    __table_args__ = (UniqueConstraint("request_id", "officer_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("recovery_requests.id"))
    officer_index: Mapped[int] = mapped_column(Integer)
    officer: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime)

    request: Mapped[RecoveryRequest] = relationship(back_populates="approvals")


class AuditCheckpoint(Base):
    """A signature by a CA key over the audit chain's head at ``event_id``."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigID)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    signer: Mapped[str] = mapped_column(String(200))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
