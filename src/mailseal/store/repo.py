"""Repository functions of the internal CA: each takes the session of a unit of work
(``with db.session() as s: ...``) and adds, finds or changes rows in it.

Nothing here commits: the session block does, so that several calls form one transaction.
Invariants that must hold across processes are left to the database, not to a prior SELECT:
UNIQUE(ca_id, serial) refuses a second certificate with one serial, a conditional UPDATE flips a
certificate to revoked once, ``UPDATE ... RETURNING`` hands out CRL numbers, and job claims use
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL. On SQLite every write session is a
``BEGIN IMMEDIATE`` transaction, which serialises writers outright.

Serial numbers are stored as lower-case hexadecimal without leading zeros
(:func:`serial_hex`); functions accept an ``int`` (``x509.Certificate.serial_number``) or a hex
string in any usual spelling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from mailseal.errors import DuplicateError, StoreError, UsageError
from mailseal.store import audit as _audit
from mailseal.store.db import is_readonly, is_unique_violation
from mailseal.store.models import (
    CA,
    CA_ROLES,
    CA_STATUSES,
    CERT_STATUSES,
    CERT_USAGES,
    CRL,
    REVOCATION_REASONS,
    AuditEvent,
    Base,
    Certificate,
    EscrowRecord,
    EscrowSet,
    Job,
    Mailbox,
    OCSPResponse,
    Person,
    RecoveryApproval,
    RecoveryRequest,
    Revocation,
)
from mailseal.store.types import utcnow

__all__ = [
    "RevokedEntry",
    "add_ca",
    "add_certificate",
    "append_audit",
    "certificates_by_status",
    "certificates_for_mailbox",
    "claim_job",
    "count_rows",
    "enqueue_job",
    "expiring_certificates",
    "find_certificates_by_serial",
    "finish_job",
    "get_ca",
    "get_cas",
    "get_certificate",
    "get_crl",
    "get_mailbox",
    "get_ocsp_response",
    "get_or_create_person_mailbox",
    "insert_certificate",
    "insert_escrow_record",
    "latest_crl",
    "list_audit_events",
    "mailbox_id",
    "next_crl_number",
    "ocsp_responses_due",
    "put_ocsp_response",
    "requeue_stale_jobs",
    "revoke",
    "revoked_entries",
    "serial_hex",
    "store_crl",
]


class RevokedEntry(NamedTuple):
    """One entry of a CRL: what :func:`revoked_entries` yields."""

    serial: int
    revoked_at: datetime
    reason: str
    invalidity_date: datetime | None


# -- helpers -------------------------------------------------------------------------------


def serial_hex(serial: int | str) -> str:
    """The stored spelling of a serial number: lower-case hex, no leading zeros.

    Accepts an ``int`` or a hex string such as ``"0x0A1B"``, ``"0a:1b"`` or ``"A1B"``.
    """
    if isinstance(serial, bool):
        raise UsageError(f"not a certificate serial number: {serial!r}")
    if isinstance(serial, int):
        value = serial
    else:
        text = serial.strip().lower().replace(":", "").replace(" ", "")
        text = text.removeprefix("0x")
        try:
            value = int(text, 16)
        except ValueError:
            raise UsageError(
                f"not a certificate serial number: {serial!r} (give it in hexadecimal)"
            ) from None
    if value < 0:
        raise UsageError(f"certificate serial numbers are positive, not {serial!r}")
    return format(value, "x")


def _ca_id(ca: CA | int) -> int:
    return ca if isinstance(ca, int) else ca.id


def _ca_label(ca: CA | int) -> str:
    return f"CA {ca}" if isinstance(ca, int) else f"CA {ca.name!r}"


def _duplicate_serial(ca: CA | int, hex_serial: str) -> str:
    return (
        f"{_ca_label(ca)} has already issued serial {hex_serial}: serial numbers must be "
        "unique per CA; issue again with a fresh random serial"
    )


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {what} {value!r}; use one of: {', '.join(allowed)}")


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(f"{what} must be a timezone-aware datetime, not {value.isoformat()}")
    return value


def _table(model: type[Base]) -> Table:
    """The Core table of a mapped class (for the statements of the hot paths)."""
    return Base.metadata.tables[model.__tablename__]


def _writable(session: Session, what: str) -> None:
    if is_readonly(session):
        raise UsageError(f"{what} needs a write session, not db.session(readonly=True)")


def _insert(session: Session, row: object, duplicate: str) -> None:
    """Add ``row`` in a savepoint; a unique violation becomes :class:`DuplicateError`
    (the surrounding transaction stays usable)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise DuplicateError(duplicate) from exc
        raise StoreError(f"the database refused the change: {str(exc.orig).strip()}") from exc


# -- CAs -----------------------------------------------------------------------------------


def add_ca(
    session: Session,
    *,
    name: str,
    role: str,
    certificate_der: bytes,
    subject: str,
    key_ref: str,
    not_before: datetime,
    not_after: datetime,
    status: str = "active",
) -> CA:
    """Record a CA. ``key_ref`` is where its key lives (a file path or PKCS#11 URI), never
    the key itself. Raises :class:`DuplicateError` if the name is taken."""
    _check(role, CA_ROLES, "CA role")
    _check(status, CA_STATUSES, "CA status")
    ca = CA(
        name=name,
        role=role,
        certificate_der=certificate_der,
        subject=subject,
        key_ref=key_ref,
        status=status,
        not_before=_aware(not_before, "not_before"),
        not_after=_aware(not_after, "not_after"),
        crl_number=0,
        created_at=utcnow(),
    )
    _insert(session, ca, f"a CA named {name!r} exists already: choose another name")
    return ca


def get_ca(session: Session, key: int | str) -> CA | None:
    """The CA with id ``key`` (an int) or name ``key`` (a str), or None."""
    if isinstance(key, int):
        return session.get(CA, key)
    return session.scalars(select(CA).where(CA.name == key)).one_or_none()


def get_cas(session: Session, *, role: str | None = None, status: str | None = None) -> list[CA]:
    """Every CA, optionally only those with ``role`` and/or ``status``, oldest first."""
    stmt = select(CA).order_by(CA.id)
    if role is not None:
        stmt = stmt.where(CA.role == role)
    if status is not None:
        stmt = stmt.where(CA.status == status)
    return list(session.scalars(stmt))


# -- people and mailboxes --------------------------------------------------------------------


def _normalise_address(address: str) -> str:
    normalised = address.strip().lower()
    local, at, domain = normalised.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in normalised):
        raise UsageError(f"not an e-mail address: {address!r}")
    return normalised


def get_mailbox(session: Session, address: str) -> Mailbox | None:
    """The mailbox of ``address`` (compared lower-cased), or None."""
    return session.scalars(
        select(Mailbox).where(Mailbox.address == _normalise_address(address))
    ).one_or_none()


def get_or_create_person_mailbox(session: Session, address: str, name: str) -> Mailbox:
    """The mailbox of ``address``; if there is none, a new person called ``name`` with that
    mailbox. An existing mailbox keeps its person (``name`` is then ignored)."""
    normalised = _normalise_address(address)
    existing = get_mailbox(session, normalised)
    if existing is not None:
        return existing
    now = utcnow()
    person = Person(name=name, created_at=now)
    mailbox = Mailbox(person=person, address=normalised, created_at=now)
    if session.get_bind().dialect.name == "sqlite":
        # SQLite writers are serialised (BEGIN IMMEDIATE): nobody can have created it since
        # the SELECT, and a savepoint would only cost time
        session.add(mailbox)
        return mailbox
    try:
        _insert(session, mailbox, normalised)
    except DuplicateError:
        # Another process created it between our SELECT and INSERT (PostgreSQL only;
        # SQLite writers are serialised): use theirs.
        found = get_mailbox(session, normalised)
        if found is None:  # pragma: no cover - the unique violation says it exists
            raise
        return found
    return mailbox


# -- certificates ------------------------------------------------------------------------------


def add_certificate(
    session: Session,
    *,
    ca: CA | int,
    serial: int | str,
    subject: str,
    sans: Iterable[str],
    profile: str,
    usage: str,
    key_type: str,
    not_before: datetime,
    not_after: datetime,
    der: bytes,
    mailbox: Mailbox | int | None = None,
    key_ref: str | None = None,
) -> Certificate:
    """Record an issued certificate.

    Raises :class:`DuplicateError` if the CA already has a certificate with this serial: the
    UNIQUE(ca_id, serial) constraint decides, so two processes issuing the same serial at once
    cannot both succeed.
    """
    _check(usage, CERT_USAGES, "certificate usage")
    hex_serial = serial_hex(serial)
    cert = Certificate(
        ca_id=_ca_id(ca),
        serial=hex_serial,
        subject=subject,
        sans=list(sans),
        profile=profile,
        usage=usage,
        key_type=key_type,
        status="valid",
        not_before=_aware(not_before, "not_before"),
        not_after=_aware(not_after, "not_after"),
        key_ref=key_ref,
        der=der,
        mailbox_id=mailbox if isinstance(mailbox, int) else None,
        created_at=utcnow(),
    )
    if isinstance(mailbox, Mailbox):
        cert.mailbox = mailbox  # also a mailbox added in this transaction and not flushed yet
    duplicate = _duplicate_serial(ca, hex_serial)
    if session.get_bind().dialect.name == "sqlite":
        # writers are serialised (BEGIN IMMEDIATE): a lookup decides, cheaper than a savepoint;
        # the UNIQUE constraint still stands behind it
        if get_certificate(session, cert.ca_id, hex_serial) is not None:
            raise DuplicateError(duplicate)
        session.add(cert)  # flushed by the next query or the commit (cert.id is None until then)
        return cert
    _insert(session, cert, duplicate)
    return cert


# -- the issuance path in Core statements ------------------------------------------------------
#
# Authority.issue writes a mailbox, certificates, their OCSP responses and audit events in one
# transaction. These functions do it with plain INSERTs and one-column SELECTs instead of the
# ORM's unit of work, which costs more than signing the certificate.

_PEOPLE = _table(Person)
_MAILBOXES = _table(Mailbox)
_CERTIFICATES = _table(Certificate)
_MAILBOX_ID = select(_MAILBOXES.c.id).where(_MAILBOXES.c.address == bindparam("address"))
_INSERT_PERSON = _PEOPLE.insert().returning(_PEOPLE.c.id)
_INSERT_MAILBOX = _MAILBOXES.insert().returning(_MAILBOXES.c.id)
_INSERT_MAILBOX_PG = (
    pg_insert(_MAILBOXES)
    .on_conflict_do_nothing(index_elements=["address"])
    .returning(_MAILBOXES.c.id)
)
_DELETE_PERSON = delete(_PEOPLE).where(_PEOPLE.c.id == bindparam("person_id"))
_INSERT_CERTIFICATE = _CERTIFICATES.insert().returning(_CERTIFICATES.c.id)


def mailbox_id(session: Session, address: str, name: str) -> int:
    """The id of the mailbox of ``address``, created with a new person called ``name`` when
    there is none (an existing mailbox keeps its person)."""
    _writable(session, "mailbox_id()")
    normalised = _normalise_address(address)
    conn = session.connection()
    found = conn.execute(_MAILBOX_ID, {"address": normalised}).scalar()
    if found is not None:
        return int(found)
    now = utcnow()
    person = conn.execute(_INSERT_PERSON, {"name": name, "created_at": now}).scalar_one()
    values = {"person_id": person, "address": normalised, "created_at": now}
    if conn.dialect.name != "postgresql":
        # SQLite writers are serialised (BEGIN IMMEDIATE): nobody created it since the SELECT
        return int(conn.execute(_INSERT_MAILBOX, values).scalar_one())
    made = conn.execute(_INSERT_MAILBOX_PG, values).scalar()
    if made is not None:
        return int(made)
    # another process created it between our SELECT and INSERT: use theirs
    conn.execute(_DELETE_PERSON, {"person_id": person})
    return int(conn.execute(_MAILBOX_ID, {"address": normalised}).scalar_one())


def insert_certificate(
    session: Session,
    *,
    ca_id: int,
    serial: int,
    subject: str,
    sans: Sequence[str],
    profile: str,
    usage: str,
    key_type: str,
    not_before: datetime,
    not_after: datetime,
    der: bytes,
    mailbox_id: int | None,
) -> int:
    """Record an issued certificate and return its row id (as :func:`add_certificate`, in one
    INSERT). A serial the CA has issued before raises :class:`DuplicateError`: the
    UNIQUE(ca_id, serial) constraint decides, and the transaction must then be abandoned."""
    _writable(session, "insert_certificate()")
    _check(usage, CERT_USAGES, "certificate usage")
    hex_serial = serial_hex(serial)
    values = {
        "ca_id": ca_id,
        "serial": hex_serial,
        "subject": subject,
        "sans": list(sans),
        "profile": profile,
        "usage": usage,
        "key_type": key_type,
        "status": "valid",
        "not_before": _aware(not_before, "not_before"),
        "not_after": _aware(not_after, "not_after"),
        "key_ref": None,
        "der": der,
        "mailbox_id": mailbox_id,
        "created_at": utcnow(),
    }
    try:
        return int(session.connection().execute(_INSERT_CERTIFICATE, values).scalar_one())
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise DuplicateError(_duplicate_serial(ca_id, hex_serial)) from exc
        raise StoreError(f"the database refused the change: {str(exc.orig).strip()}") from exc


def get_certificate(session: Session, ca: CA | int, serial: int | str) -> Certificate | None:
    """The certificate ``serial`` of ``ca``, or None."""
    return session.scalars(
        select(Certificate).where(
            Certificate.ca_id == _ca_id(ca), Certificate.serial == serial_hex(serial)
        )
    ).one_or_none()


def find_certificates_by_serial(session: Session, serial: int | str) -> list[Certificate]:
    """Every certificate with ``serial``, whichever CA issued it."""
    return list(
        session.scalars(
            select(Certificate)
            .where(Certificate.serial == serial_hex(serial))
            .order_by(Certificate.id)
        )
    )


def certificates_for_mailbox(
    session: Session,
    mailbox: Mailbox | str,
    *,
    status: str | None = None,
    usage: str | None = None,
) -> list[Certificate]:
    """The certificates of a mailbox (given as a row or an address), newest first."""
    stmt = select(Certificate).order_by(Certificate.not_before.desc(), Certificate.id.desc())
    if isinstance(mailbox, Mailbox):
        stmt = stmt.where(Certificate.mailbox_id == mailbox.id)
    else:
        stmt = stmt.join(Mailbox, Certificate.mailbox_id == Mailbox.id).where(
            Mailbox.address == _normalise_address(mailbox)
        )
    if status is not None:
        stmt = stmt.where(Certificate.status == status)
    if usage is not None:
        stmt = stmt.where(Certificate.usage == usage)
    return list(session.scalars(stmt))


def expiring_certificates(
    session: Session,
    *,
    within: timedelta | int,
    now: datetime | None = None,
    ca: CA | int | None = None,
) -> list[Certificate]:
    """Valid certificates whose ``not_after`` falls in ``[now, now + within)``; ``within`` is
    a timedelta or a number of days. Soonest first, with their mailboxes loaded."""
    span = within if isinstance(within, timedelta) else timedelta(days=within)
    start = utcnow() if now is None else _aware(now, "now")
    stmt = (
        select(Certificate)
        .where(
            Certificate.status == "valid",
            Certificate.not_after >= start,
            Certificate.not_after < start + span,
        )
        .options(selectinload(Certificate.mailbox))
        .order_by(Certificate.not_after, Certificate.id)
    )
    if ca is not None:
        stmt = stmt.where(Certificate.ca_id == _ca_id(ca))
    return list(session.scalars(stmt))


def certificates_by_status(
    session: Session,
    status: str,
    *,
    ca: CA | int | None = None,
    limit: int | None = None,
) -> list[Certificate]:
    """Certificates with ``status`` (valid or revoked), oldest first."""
    _check(status, CERT_STATUSES, "certificate status")
    stmt = select(Certificate).where(Certificate.status == status).order_by(Certificate.id)
    if ca is not None:
        stmt = stmt.where(Certificate.ca_id == _ca_id(ca))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


# -- revocation ---------------------------------------------------------------------------------


def revoke(
    session: Session,
    certificate: Certificate,
    *,
    reason: str,
    at: datetime,
    invalidity_date: datetime | None = None,
) -> Revocation:
    """Revoke ``certificate``: record why and when, and flip its status, in the session's
    transaction. ``reason`` is an RFC 5280 CRLReason name (``keyCompromise``, ...).

    Raises :class:`DuplicateError` if it is revoked already (also when another process
    revoked it a moment ago).
    """
    _writable(session, "revoke()")
    if certificate.id is None:
        session.flush()  # added in this transaction and not flushed yet
    _check(reason, [r for r in REVOCATION_REASONS if r != "removeFromCRL"], "revocation reason")
    _aware(at, "at")
    if invalidity_date is not None:
        _aware(invalidity_date, "invalidity_date")
    flipped = session.execute(
        update(Certificate)
        .where(Certificate.id == certificate.id, Certificate.status == "valid")
        .values(status="revoked")
        .execution_options(synchronize_session=False)
    )
    if getattr(flipped, "rowcount", 0) != 1:
        previous = session.scalars(
            select(Revocation).where(Revocation.certificate_id == certificate.id)
        ).one_or_none()
        when = f" ({previous.reason}, {previous.revoked_at.isoformat()})" if previous else ""
        raise DuplicateError(
            f"certificate {certificate.serial} of CA {certificate.ca_id} is already revoked{when}"
        )
    set_committed_value(certificate, "status", "revoked")
    revocation = Revocation(
        certificate_id=certificate.id,
        reason=reason,
        revoked_at=at,
        invalidity_date=invalidity_date,
    )
    _insert(session, revocation, f"certificate {certificate.serial} is already revoked")
    return revocation


def revoked_entries(
    session: Session, ca: CA | int, *, batch_size: int = 10_000
) -> Iterator[RevokedEntry]:
    """Stream the revoked certificates of ``ca`` as :class:`RevokedEntry` tuples, in serial
    order of revocation, ``batch_size`` rows at a time (a server-side cursor on PostgreSQL):
    the input of a CRL with up to millions of entries, without building ORM objects.

    Consume it inside the session block.
    """
    stmt = (
        select(
            Certificate.serial,
            Revocation.revoked_at,
            Revocation.reason,
            Revocation.invalidity_date,
        )
        .join(Revocation, Revocation.certificate_id == Certificate.id)
        .where(Certificate.ca_id == _ca_id(ca))
        .order_by(Revocation.id)
        .execution_options(yield_per=batch_size)
    )
    for serial, revoked_at, reason, invalidity_date in session.execute(stmt):
        yield RevokedEntry(int(serial, 16), revoked_at, reason, invalidity_date)


# -- CRLs ------------------------------------------------------------------------------------


def next_crl_number(session: Session, ca: CA | int) -> int:
    """Reserve the next CRL number of ``ca`` (1, 2, 3, ...) with one atomic
    ``UPDATE ... RETURNING``: the row stays locked until the session ends, so concurrent
    callers (threads or processes, SQLite or PostgreSQL) never get the same number.

    Commit before publishing a CRL with it: a rolled-back session hands the number out again.
    """
    _writable(session, "next_crl_number()")
    number = session.execute(
        update(CA)
        .where(CA.id == _ca_id(ca))
        .values(crl_number=CA.crl_number + 1)
        .returning(CA.crl_number)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if number is None:
        raise StoreError(f"{_ca_label(ca)} does not exist")
    if isinstance(ca, CA):
        set_committed_value(ca, "crl_number", number)
    return int(number)


def store_crl(
    session: Session,
    ca: CA | int,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    der: bytes,
    delta_base: int | None = None,
) -> CRL:
    """Keep an issued CRL (a delta CRL when ``delta_base`` is given). Raises
    :class:`DuplicateError` if the CA already has a CRL with this number."""
    crl = CRL(
        ca_id=_ca_id(ca),
        number=number,
        delta_base=delta_base,
        this_update=_aware(this_update, "this_update"),
        next_update=_aware(next_update, "next_update"),
        der=der,
    )
    _insert(session, crl, f"{_ca_label(ca)} already has a CRL number {number}")
    return crl


def latest_crl(session: Session, ca: CA | int, *, delta: bool = False) -> CRL | None:
    """The newest full CRL of ``ca`` (or the newest delta CRL), or None."""
    kind = CRL.delta_base.is_not(None) if delta else CRL.delta_base.is_(None)
    return session.scalars(
        select(CRL).where(CRL.ca_id == _ca_id(ca), kind).order_by(CRL.number.desc()).limit(1)
    ).first()


def get_crl(session: Session, ca: CA | int, number: int) -> CRL | None:
    """The CRL ``number`` of ``ca``, or None."""
    return session.scalars(
        select(CRL).where(CRL.ca_id == _ca_id(ca), CRL.number == number)
    ).one_or_none()


# -- OCSP ---------------------------------------------------------------------------------------


def put_ocsp_response(
    session: Session,
    ca: CA | int,
    serial: int | str,
    *,
    produced_at: datetime,
    next_update: datetime,
    der: bytes,
) -> None:
    """Store the pre-signed OCSP response for (``ca``, ``serial``), replacing an older one.
    A response older than the stored one is ignored (two signers racing keep the newest)."""
    dialect_insert: Any = (
        pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    ins = dialect_insert(OCSPResponse).values(
        **_ocsp_values(ca, serial, produced_at, next_update, der)
    )
    session.execute(
        ins.on_conflict_do_update(
            index_elements=[OCSPResponse.ca_id, OCSPResponse.serial],
            set_={k: ins.excluded[k] for k in ("produced_at", "next_update", "der")},
            where=OCSPResponse.produced_at <= ins.excluded.produced_at,
        )
    )


def _ocsp_values(
    ca: CA | int, serial: int | str, produced_at: datetime, next_update: datetime, der: bytes
) -> dict[str, Any]:
    return {
        "ca_id": _ca_id(ca),
        "serial": serial_hex(serial),
        "produced_at": _aware(produced_at, "produced_at"),
        "next_update": _aware(next_update, "next_update"),
        "der": der,
    }


_INSERT_OCSP = _table(OCSPResponse).insert()


def add_ocsp_response(
    session: Session,
    ca: CA | int,
    serial: int | str,
    *,
    produced_at: datetime,
    next_update: datetime,
    der: bytes,
) -> None:
    """Store the first pre-signed OCSP response of a certificate issued in this transaction
    (one plain INSERT; :func:`put_ocsp_response` replaces one)."""
    session.connection().execute(
        _INSERT_OCSP, _ocsp_values(ca, serial, produced_at, next_update, der)
    )


_OCSP_DER = select(OCSPResponse.der, OCSPResponse.next_update).where(
    OCSPResponse.ca_id == bindparam("ca_id"), OCSPResponse.serial == bindparam("serial")
)


def ocsp_response_der(
    conn: Connection, ca_id: int, serial: int | str
) -> tuple[bytes, datetime] | None:
    """The stored response for (CA ``ca_id``, ``serial``) and its nextUpdate, through a Core
    connection (:meth:`Database.reader`): the OCSP responder's hot path, without the ORM."""
    row = conn.execute(_OCSP_DER, {"ca_id": ca_id, "serial": serial_hex(serial)}).first()
    return None if row is None else (bytes(row[0]), row[1])


def get_ocsp_response(session: Session, ca: CA | int, serial: int | str) -> OCSPResponse | None:
    """The stored OCSP response for (``ca``, ``serial``), or None."""
    return session.scalars(
        select(OCSPResponse).where(
            OCSPResponse.ca_id == _ca_id(ca), OCSPResponse.serial == serial_hex(serial)
        )
    ).one_or_none()


def ocsp_responses_due(
    session: Session, *, before: datetime, limit: int = 1000
) -> list[tuple[int, str]]:
    """(ca_id, serial) of stored responses whose ``next_update`` is before ``before``:
    what a pre-signing job should refresh, soonest first."""
    rows = session.execute(
        select(OCSPResponse.ca_id, OCSPResponse.serial)
        .where(OCSPResponse.next_update < _aware(before, "before"))
        .order_by(OCSPResponse.next_update)
        .limit(limit)
    )
    return [(ca_id, serial) for ca_id, serial in rows]


# -- jobs -----------------------------------------------------------------------------------


def enqueue_job(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_after: datetime | None = None,
) -> Job:
    """Queue a job of ``kind`` with a JSON ``payload``, to run now or after ``run_after``."""
    now = utcnow()
    job = Job(
        kind=kind,
        payload=dict(payload or {}),
        state="queued",
        run_after=now if run_after is None else _aware(run_after, "run_after"),
        attempts=0,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def claim_job(
    session: Session,
    worker: str,
    *,
    kinds: Iterable[str] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Claim the oldest due queued job (of one of ``kinds``) for ``worker``, or None.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers take different
    jobs without waiting for each other. SQLite: the write session holds the database's write
    lock, so claims happen one after the other. Either way a job goes to exactly one worker.
    Commit promptly (end the session block) so the claim becomes visible.
    """
    _writable(session, "claim_job()")
    when = utcnow() if now is None else _aware(now, "now")
    stmt = (
        select(Job)
        .where(Job.state == "queued", Job.run_after <= when)
        .order_by(Job.run_after, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if kinds is not None:
        stmt = stmt.where(Job.kind.in_(list(kinds)))
    job = session.scalars(stmt).first()
    if job is None:
        return None
    job.state = "running"
    job.locked_by = worker
    job.locked_at = when
    job.attempts += 1
    session.flush()
    return job


def finish_job(
    session: Session,
    job: Job | int,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Mark a running job done; or, with ``error``, failed (queued again at ``retry_at`` if
    given). Raises :class:`StoreError` if the job is not running."""
    job_id = job if isinstance(job, int) else job.id
    values: dict[str, Any] = {"locked_by": None, "locked_at": None}
    if error is None:
        values["state"] = "done"
    elif retry_at is not None:
        values.update(state="queued", last_error=error, run_after=_aware(retry_at, "retry_at"))
    else:
        values.update(state="failed", last_error=error)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise StoreError(f"job {job_id} is not running: it cannot be finished twice")
    if isinstance(job, Job):
        for key, value in values.items():
            set_committed_value(job, key, value)


def requeue_stale_jobs(
    session: Session, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Put running jobs locked longer than ``older_than`` back in the queue (their worker
    died). Returns how many."""
    when = utcnow() if now is None else _aware(now, "now")
    result = session.execute(
        update(Job)
        .where(Job.state == "running", Job.locked_at < when - older_than)
        .values(state="queued", locked_by=None, locked_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


# -- audit ------------------------------------------------------------------------------------


def append_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
    outcome: str = "ok",
    flush: bool = True,
) -> int:
    """Chain an event onto the audit log (in the session's transaction, so it is recorded
    exactly when the change it describes is; see :mod:`mailseal.store.audit`) and return
    its id. Never put secrets in ``details``. The event is inserted at once; ``flush`` also
    flushes the rows the session's unit of work holds, so that their errors surface here."""
    _writable(session, "append_audit()")
    event_id = _audit.append(
        session,
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        outcome=outcome,
        at=None if at is None else _aware(at, "at"),
    )
    if flush:
        session.flush()
    return event_id


def list_audit_events(
    session: Session,
    *,
    since: datetime | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Audit events in the order they were appended, optionally from ``since`` / of
    ``action``."""
    stmt = select(AuditEvent).order_by(AuditEvent.id).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= _aware(since, "since"))
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.scalars(stmt))


def count_rows(session: Session, model: type[Base]) -> int:
    """How many rows the table of ``model`` has (for status pages and tests)."""
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


# -- periodic work on one node at a time ---------------------------------------------------------


def try_leader(session: Session, name: str) -> bool:
    """Whether this session may do the periodic work ``name`` (re-signing OCSP responses,
    publishing CRLs) now: on PostgreSQL a transaction-scoped advisory lock
    (``pg_try_advisory_xact_lock``), held until the session ends, so that of several nodes one
    does the work and the others skip it; on SQLite (one machine, writers serialised by the
    write transaction) always True."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return True
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


# -- key escrow -----------------------------------------------------------------------------------


def add_escrow_set(
    session: Session,
    *,
    set_id: bytes,
    threshold: int,
    officers: Sequence[str],
    public_key: bytes,
    verification: Sequence[bytes],
    protection: Sequence[str],
) -> EscrowSet:
    """Record a new escrow set and make it the active one (the previous one stays, inactive,
    for the records sealed to it). ``protection`` says, per officer, how the share (or
    approval key) file is protected."""
    _writable(session, "add_escrow_set()")
    session.execute(update(EscrowSet).where(EscrowSet.active.is_(True)).values(active=False))
    row = EscrowSet(
        set_id=set_id.hex(),
        threshold=threshold,
        officers=list(officers),
        public_key=public_key,
        verification=[v.hex() for v in verification],
        protection=list(protection),
        active=True,
        created_at=utcnow(),
    )
    _insert(session, row, f"escrow set {set_id.hex()} exists already")
    return row


_ESCROW_SETS = _table(EscrowSet)
_ACTIVE_ESCROW_ID = (
    select(_ESCROW_SETS.c.id)
    .where(_ESCROW_SETS.c.active.is_(True))
    .order_by(_ESCROW_SETS.c.id.desc())
    .limit(1)
)


def active_escrow_set(session: Session) -> EscrowSet | None:
    """The escrow set new encryption keys are archived to, or None before ``escrow init``
    (one one-column lookup when there is none: every issuance asks)."""
    found = session.connection().execute(_ACTIVE_ESCROW_ID).scalar()
    return None if found is None else session.get(EscrowSet, int(found))


def add_escrow_record(
    session: Session,
    *,
    escrow_set: EscrowSet,
    certificate: Certificate | None,
    ephemeral: bytes,
    nonce: bytes,
    ciphertext: bytes,
    masked: bytes | None = None,
    wrapped_key: bytes | None = None,
    fingerprint: str | None = None,
    source: str = "issued",
    mailbox: Mailbox | None = None,
    certificate_der: bytes | None = None,
) -> EscrowRecord:
    """Archive a sealed key for ``certificate`` (in the caller's transaction: with it); an
    imported key from another CA has no ``certificate`` row and carries ``certificate_der``
    and ``mailbox`` instead."""
    _writable(session, "add_escrow_record()")
    row = EscrowRecord(
        escrow_set=escrow_set,
        certificate=certificate,
        ephemeral=ephemeral,
        masked=masked,
        wrapped_key=wrapped_key,
        nonce=nonce,
        ciphertext=ciphertext,
        fingerprint=fingerprint,
        source=source,
        mailbox=mailbox if mailbox is not None else certificate.mailbox if certificate else None,
        certificate_der=certificate_der,
        created_at=utcnow(),
    )
    session.add(row)
    return row


def insert_escrow_record(
    session: Session,
    *,
    escrow_set_id: int,
    certificate_id: int,
    mailbox_id: int | None,
    fingerprint: str,
    ephemeral: bytes,
    nonce: bytes,
    ciphertext: bytes,
    masked: bytes | None = None,
    wrapped_key: bytes | None = None,
) -> None:
    """Archive the sealed key of a certificate issued in this transaction (one INSERT; the
    issuance path's :func:`add_escrow_record`)."""
    _writable(session, "insert_escrow_record()")
    session.connection().execute(
        _INSERT_ESCROW_RECORD,
        {
            "escrow_set_id": escrow_set_id,
            "certificate_id": certificate_id,
            "ephemeral": ephemeral,
            "masked": masked,
            "wrapped_key": wrapped_key,
            "nonce": nonce,
            "ciphertext": ciphertext,
            "fingerprint": fingerprint,
            "source": "issued",
            "mailbox_id": mailbox_id,
            "certificate_der": None,
            "created_at": utcnow(),
        },
    )


_INSERT_ESCROW_RECORD = _table(EscrowRecord).insert()


def escrow_record_by_fingerprint(session: Session, fingerprint: str) -> EscrowRecord | None:
    return session.scalars(
        select(EscrowRecord).where(EscrowRecord.fingerprint == fingerprint)
    ).first()


def escrow_history(session: Session, address: str) -> list[EscrowRecord]:
    """Every archived key of ``address`` (issued here or imported), oldest first."""
    stmt = (
        select(EscrowRecord)
        .join(Mailbox, EscrowRecord.mailbox_id == Mailbox.id)
        .where(Mailbox.address == _normalise_address(address))
        .order_by(EscrowRecord.id)
        .options(selectinload(EscrowRecord.certificate), selectinload(EscrowRecord.escrow_set))
    )
    return list(session.scalars(stmt))


def escrow_records(session: Session, ids: Sequence[int]) -> list[EscrowRecord]:
    """The escrow records with ``ids``, in that order."""
    rows = {
        r.id: r
        for r in session.scalars(
            select(EscrowRecord)
            .where(EscrowRecord.id.in_(list(ids)))
            .options(selectinload(EscrowRecord.certificate))
        )
    }
    return [rows[i] for i in ids if i in rows]


def escrow_set_by_set_id(session: Session, set_id: str) -> EscrowSet | None:
    return session.scalars(select(EscrowSet).where(EscrowSet.set_id == set_id)).first()


def records_of_set(session: Session, escrow_set_id: int) -> list[EscrowRecord]:
    return list(
        session.scalars(
            select(EscrowRecord)
            .where(EscrowRecord.escrow_set_id == escrow_set_id)
            .order_by(EscrowRecord.id)
        )
    )


# -- recovery requests ----------------------------------------------------------------------------


def add_recovery_request(session: Session, **values: Any) -> RecoveryRequest:
    _writable(session, "add_recovery_request()")
    row = RecoveryRequest(**values)
    _insert(session, row, f"recovery request {values.get('request_id')} exists already")
    return row


def get_recovery_request(
    session: Session, request_id: str, *, for_update: bool = False
) -> RecoveryRequest | None:
    stmt = (
        select(RecoveryRequest)
        .where(RecoveryRequest.request_id == request_id)
        .options(selectinload(RecoveryRequest.approvals), selectinload(RecoveryRequest.escrow_set))
    )
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=RecoveryRequest)
    return session.scalars(stmt).first()


def recovery_requests(session: Session, *, limit: int = 200) -> list[RecoveryRequest]:
    stmt = (
        select(RecoveryRequest)
        .order_by(RecoveryRequest.id.desc())
        .limit(limit)
        .options(selectinload(RecoveryRequest.approvals), selectinload(RecoveryRequest.escrow_set))
    )
    return list(session.scalars(stmt))


def add_recovery_approval(
    session: Session, *, request: RecoveryRequest, officer_index: int, officer: str, payload: bytes
) -> RecoveryApproval:
    """Record an approval; a second one by the same officer is a :class:`DuplicateError`."""
    _writable(session, "add_recovery_approval()")
    row = RecoveryApproval(
        request_id=request.id,
        officer_index=officer_index,
        officer=officer,
        payload=payload,
        approved_at=utcnow(),
    )
    _insert(session, row, f"officer {officer} has approved this request already")
    return row
