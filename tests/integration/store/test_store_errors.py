"""Database failures reach the caller as StoreError subclasses with actionable messages."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailseal.errors import DuplicateError, StoreError, StoreUnavailable
from mailseal.store import Database, Mailbox, Person, repo, sqlite_url
from mailseal.store.types import utcnow


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "not a database URL"),
        ("mysql://root@localhost/mailseal", "unsupported database URL"),
        ("postgresql+psycopg2://u@h/db", "psycopg 3"),
        ("sqlite:////nonexistent-mailseal-dir/sub/x.db", "does not exist"),
    ],
)
def test_bad_urls(url: str, fragment: str) -> None:
    with pytest.raises(StoreError, match=fragment):
        Database(url)


def test_postgres_urls_use_psycopg() -> None:
    for url in ("postgresql://u:pw@db.example/ms", "postgres://u:pw@db.example/ms"):
        db = Database(url)
        assert db.engine.url.drivername == "postgresql+psycopg"
        assert "pw" not in db.url
    assert Database("postgresql+psycopg://u@h/db").dialect == "postgresql"


def test_sqlite_url_helper(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path))
    assert db.dialect == "sqlite"
    assert db.engine.url.database == str(tmp_path / "mailseal.db")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgresql() -> None:
    port = _closed_port()
    db = Database(f"postgresql://mailseal:s3cret@127.0.0.1:{port}/mailseal", connect_timeout=2)
    for attempt in (db.ping, db.upgrade, db.current_revision):
        with pytest.raises(StoreUnavailable) as exc:
            attempt()
        message = str(exc.value)
        assert f"127.0.0.1:{port}" in message
        assert "server is running" in message
        assert "s3cret" not in message
    with pytest.raises(StoreUnavailable), db.session() as s:
        repo.get_ca(s, 1)


def test_missing_postgresql_database(pg_server: Any) -> None:
    url = pg_server.admin_url.replace("/postgres", "/no_such_database")
    with pytest.raises(StoreError, match=r"does not exist.*createdb no_such_database"):
        Database(url).ping()


def test_unknown_postgresql_role(pg_server: Any) -> None:
    url = pg_server.admin_url.replace("mailseal@", "nobody_here@")
    with pytest.raises(StoreError, match="refused the login of user 'nobody_here'"):
        Database(url).ping()


def test_schema_missing(empty_db: Database) -> None:
    with pytest.raises(StoreError, match=r"run the migrations"), empty_db.session() as s:
        repo.get_ca(s, "x")


def test_raw_unique_violation_is_duplicate(db: Database) -> None:
    now = utcnow()
    with db.session() as s:
        s.add(Mailbox(person=Person(name="A", created_at=now), address="a@x.org", created_at=now))
    with pytest.raises(DuplicateError), db.session() as s:
        s.add(Mailbox(person=Person(name="B", created_at=now), address="a@x.org", created_at=now))


def test_check_constraint_violation(db: Database) -> None:
    now = utcnow()
    with pytest.raises(StoreError, match="refused the change"), db.session() as s:
        s.add(Mailbox(person=Person(name="A", created_at=now), address="A@X.org", created_at=now))


def test_sqlite_locked(tmp_path: Path, database_url: Callable[[str], str]) -> None:
    url = database_url("sqlite")
    Database(url).upgrade()
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        db = Database(url, busy_timeout=0.2)
        with pytest.raises(StoreUnavailable, match="stayed locked"), db.session() as s:
            repo.enqueue_job(s, "k", {})
        # readers are not blocked by a writer (WAL)
        with db.session(readonly=True) as s:
            assert repo.get_cas(s) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
