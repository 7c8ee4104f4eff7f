"""The audit log's hash chain.

Every event is one row of ``audit_events`` with consecutive ids from 1. Its ``entry_hash`` is
HMAC-SHA256, under the organisation's audit key, of a canonical encoding of the event (id,
time, actor, action, subject, outcome, details) and of the previous event's ``entry_hash``
(32 zero bytes for the first), which is also stored as ``prev_hash``. So:

- changing an event's content breaks its own hash;
- removing one leaves a gap in the ids (and breaks the link of the next one);
- inserting or reordering breaks the links around the place;
- and without the audit key (it lives in the data directory, not in the database) nobody with
  only database access can write a new event that verifies, not even at the end.

Someone who holds both the database and the audit key could rewrite the chain; the signed
checkpoints (``audit_checkpoints``, made in :mod:`mailseal.lifecycle.audit` with a CA key)
catch that for every event up to the last checkpoint.

Appending takes the chain's head under a lock: the write transaction on SQLite, a
transaction-scoped advisory lock on PostgreSQL, so that two processes never fork the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from mailseal.store.models import AuditCheckpoint, AuditEvent
from mailseal.store.types import utcnow

__all__ = [
    "GENESIS",
    "OUTCOMES",
    "ChainProblem",
    "append",
    "check_chain",
    "entry_digest",
    "head",
]

GENESIS: Final = bytes(32)
OUTCOMES: Final = ("ok", "refused", "failed")
_LOCK_KEY: Final = int.from_bytes(hashlib.sha256(b"mailseal-audit-chain").digest()[:8], "big") - (
    1 << 63
)
_HEAD: Final = "mailseal.audit.head"
_KEY: Final = "mailseal.audit.key"


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_digest(
    key: bytes,
    *,
    event_id: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    outcome: str,
    details: dict[str, Any],
    prev: bytes,
) -> bytes:
    """The chain hash of one event (HMAC-SHA256 under ``key`` of a canonical JSON encoding)."""
    body = json.dumps(
        {
            "id": int(event_id),
            "at": _timestamp(at),
            "actor": actor,
            "action": action,
            "subject": subject,
            "outcome": outcome,
            "details": details,
            "prev": prev.hex(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()
    return hmac.new(key, b"mailseal-audit-v1\n" + body, hashlib.sha256).digest()


def _key(session: Session) -> bytes:
    key = session.info.get(_KEY)
    return key if isinstance(key, bytes) else b""


_EVENTS: Final[Table] = AuditEvent.metadata.tables[AuditEvent.__tablename__]
_INSERT = _EVENTS.insert()
_HEAD_ROW = select(_EVENTS.c.id, _EVENTS.c.entry_hash).order_by(_EVENTS.c.id.desc()).limit(1)


def head(session: Session) -> tuple[int, bytes]:
    """The id and hash of the newest event (0 and the genesis hash for an empty log)."""
    row = session.connection().execute(_HEAD_ROW).first()
    if row is None:
        return 0, GENESIS
    return int(row[0]), bytes(row[1] or b"")


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
    at: datetime | None = None,
) -> int:
    """Chain a new event onto the log, in ``session``'s transaction (one INSERT, at once);
    returns the event's id."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    cached = session.info.get(_HEAD)
    if cached is None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        session.flush()  # events added earlier in this transaction count
        cached = head(session)
    last_id, last_hash = cached
    when = (utcnow() if at is None else at).astimezone(UTC)
    payload = dict(details or {})
    event_id = last_id + 1
    digest = entry_digest(
        _key(session),
        event_id=event_id,
        at=when,
        actor=actor,
        action=action,
        subject=subject,
        outcome=outcome,
        details=payload,
        prev=last_hash,
    )
    session.connection().execute(
        _INSERT,
        {
            "id": event_id,
            "at": when,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": payload,
            "outcome": outcome,
            "prev_hash": last_hash,
            "entry_hash": digest,
        },
    )
    session.info[_HEAD] = (event_id, digest)
    return event_id


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first place where the chain does not hold: ``event_id`` and what is wrong."""

    event_id: int
    kind: str  # changed | removed | inserted | reordered | unchained
    message: str


def _recompute(key: bytes, row: Any, event_id: int, prev: bytes) -> bytes:
    return entry_digest(
        key,
        event_id=event_id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        outcome=row.outcome,
        details=row.details if isinstance(row.details, dict) else {"": row.details},
        prev=prev,
    )


def check_chain(
    rows: Iterator[Any], key: bytes, *, checkpoints: dict[int, bytes] | None = None
) -> tuple[int, bytes, ChainProblem | None]:
    """Walk ``rows`` (events in id order) and return the number checked, the head hash, and
    the first problem (or None). ``checkpoints`` maps event ids to the hashes a signed
    checkpoint vouches for."""
    expected_id = 1
    prev = GENESIS
    count = 0
    marks = checkpoints or {}
    for row in rows:
        event_id = int(row.id)
        stored = bytes(row.entry_hash or b"")
        stored_prev = bytes(row.prev_hash or b"")
        if not stored:
            return (
                count,
                prev,
                ChainProblem(
                    event_id, "unchained", f"entry {event_id} has no chain hash: it was inserted"
                ),
            )
        if event_id > expected_id:
            # the missing ids were removed, unless this row is an earlier one moved here
            if _recompute(key, row, expected_id, prev) == stored:
                return (
                    count,
                    prev,
                    ChainProblem(
                        event_id, "reordered", f"entry {event_id} was renumbered from {expected_id}"
                    ),
                )
            gap = (
                f"entry {expected_id}"
                if event_id == expected_id + 1
                else f"entries {expected_id}–{event_id - 1}"
            )
            return count, prev, ChainProblem(expected_id, "removed", f"{gap} removed")
        own = _recompute(key, row, event_id, stored_prev)
        if own != stored:
            # content changed, or an entry from elsewhere renumbered into this place
            for other in (event_id - 1, event_id + 1):
                if other >= 1 and _recompute(key, row, other, stored_prev) == stored:
                    kind = "inserted" if other == event_id - 1 else "removed"
                    how = "inserted before it" if kind == "inserted" else "removed or reordered"
                    return (
                        count,
                        prev,
                        ChainProblem(
                            event_id,
                            kind,
                            f"entry {event_id} holds what was entry {other}: entries were {how}",
                        ),
                    )
            return (
                count,
                prev,
                ChainProblem(
                    event_id,
                    "changed",
                    f"entry {event_id} was changed (its content does not match its hash"
                    " — or the audit key is not the one that wrote it)",
                ),
            )
        if stored_prev != prev:
            return (
                count,
                prev,
                ChainProblem(
                    event_id,
                    "reordered",
                    f"entry {event_id} does not follow entry {event_id - 1}: entries were"
                    " inserted, removed or reordered here",
                ),
            )
        mark = marks.get(event_id)
        if mark is not None and mark != stored:
            return (
                count,
                prev,
                ChainProblem(
                    event_id,
                    "changed",
                    f"entry {event_id} is not the entry the checkpoint signed: the log was"
                    " rewritten"
                    f" up to entry {event_id}",
                ),
            )
        prev = stored
        expected_id = event_id + 1
        count += 1
    return count, prev, None


def iter_events(session: Session, *, batch: int = 1000) -> Iterator[AuditEvent]:
    """Every event in id order, read in batches (a long log is not held in memory)."""
    last = 0
    while True:
        page = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)
            )
        )
        if not page:
            return
        yield from page
        last = page[-1].id
        session.expunge_all()


def add_checkpoint(
    session: Session,
    *,
    event_id: int,
    entry_hash: bytes,
    signer: str,
    certificate_der: bytes,
    signature: bytes,
    at: datetime | None = None,
) -> AuditCheckpoint:
    row = AuditCheckpoint(
        event_id=event_id,
        entry_hash=entry_hash,
        at=utcnow() if at is None else at,
        signer=signer,
        certificate_der=certificate_der,
        signature=signature,
    )
    session.add(row)
    session.flush()
    return row


def checkpoints(session: Session) -> list[AuditCheckpoint]:
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)))


def list_events(
    session: Session, *, since: datetime | None = None, limit: int | None = None
) -> list[AuditEvent]:
    """Events in id order, from ``since``, at most ``limit``."""
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def checkpoint_message(event_id: int, entry_hash: bytes, at: datetime) -> bytes:
    """What a checkpoint signs."""
    return (
        b"mailseal-audit-checkpoint-v1\n"
        + json.dumps(
            {"event": int(event_id), "hash": entry_hash.hex(), "at": _timestamp(at)},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    )
