"""Migrations build the schema from nothing, on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from mailseal.errors import StoreError
from mailseal.store import Database, Mailbox
from mailseal.store.models import Base
from mailseal.store.types import utcnow

TABLES = {
    "alembic_version",
    "audit_events",
    "cas",
    "certificates",
    "crls",
    "escrow_records",
    "escrow_sets",
    "audit_checkpoints",
    "recovery_requests",
    "recovery_approvals",
    "jobs",
    "mailboxes",
    "ocsp_responses",
    "people",
    "revocations",
}


def test_upgrade_from_empty(empty_db: Database) -> None:
    assert empty_db.current_revision() is None
    assert inspect(empty_db.engine).get_table_names() == []
    empty_db.upgrade()
    assert empty_db.current_revision() == empty_db.head_revision() == "0003"
    assert set(inspect(empty_db.engine).get_table_names()) == TABLES


def test_upgrade_from_the_first_schema_keeps_the_data(empty_db: Database) -> None:
    """A database made by release 0001 is upgraded in place."""
    empty_db.upgrade("0001")
    with empty_db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO people (name, created_at) VALUES ('kept', :t)"), {"t": utcnow()}
        )
    empty_db.upgrade()
    assert empty_db.current_revision() == empty_db.head_revision()
    with empty_db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM people")).scalar_one() == "kept"


def test_upgrade_is_idempotent(db: Database) -> None:
    db.upgrade()
    db.upgrade()
    assert db.current_revision() == db.head_revision()


def test_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_unique_and_check_constraints_exist(db: Database) -> None:
    insp = inspect(db.engine)
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("certificates")}
    assert ("ca_id", "serial") in uniques
    assert {tuple(u["column_names"]) for u in insp.get_unique_constraints("ocsp_responses")} == {
        ("ca_id", "serial")
    }
    assert ("certificate_id",) in {
        tuple(u["column_names"]) for u in insp.get_unique_constraints("revocations")
    }


def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}", busy_timeout=7)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 7000
    finally:
        db.dispose()


def test_foreign_keys_enforced(db: Database) -> None:
    with pytest.raises(StoreError), db.session() as s:
        s.add(Mailbox(person_id=4242, address="x@example.org", created_at=utcnow()))


def test_two_nodes_upgrading_at_once(empty_db: Database) -> None:
    """Two processes starting together both migrate: one creates the schema, the other waits
    (advisory lock on PostgreSQL, the write lock on SQLite) and then finds nothing to do."""
    other = Database(empty_db.engine.url.render_as_string(hide_password=False))
    barrier = threading.Barrier(2, timeout=60)
    errors: list[BaseException] = []

    def migrate(db: Database) -> None:
        try:
            barrier.wait()
            db.upgrade()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(d,)) for d in (empty_db, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    other.dispose()
    assert errors == [], [repr(e.__cause__) for e in errors]
    assert empty_db.current_revision() == empty_db.head_revision()
