"""The database of the internal CA: SQLAlchemy models, repositories and Alembic migrations.

::

    from mailseal.store import Database, repo

    db = Database(sqlite_url(data_dir))       # or "postgresql://user:pw@host/mailseal"
    db.upgrade()                              # migrations to the newest schema
    with db.session() as s:                   # one transaction: commit, or rollback on error
        ca = repo.get_ca(s, "Issuing CA 1")
        repo.add_certificate(s, ca=ca, serial=cert.serial_number, ...)

Only this package (and the entry points above it) import SQLAlchemy; domain code receives the
values it needs. Errors leave as :class:`~mailseal.errors.StoreError` subclasses.
"""

from __future__ import annotations

from mailseal.store import repo
from mailseal.store.db import Database, sqlite_url
from mailseal.store.models import (
    CA,
    CRL,
    AuditEvent,
    Certificate,
    EscrowRecord,
    EscrowSet,
    Job,
    Mailbox,
    OCSPResponse,
    Person,
    Revocation,
)
from mailseal.store.repo import RevokedEntry, serial_hex

__all__ = [
    "CA",
    "CRL",
    "AuditEvent",
    "Certificate",
    "Database",
    "EscrowRecord",
    "EscrowSet",
    "Job",
    "Mailbox",
    "OCSPResponse",
    "Person",
    "Revocation",
    "RevokedEntry",
    "repo",
    "serial_hex",
    "sqlite_url",
]
