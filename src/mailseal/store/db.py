"""The database: engine, schema migrations, sessions, and error translation.

``Database(url)`` accepts

* ``sqlite:///path/to/mailseal.db`` (the default, a file in the data directory, see
  :func:`sqlite_url`): WAL journal, foreign keys on, a busy timeout, and every write session is
  a ``BEGIN IMMEDIATE`` transaction so that concurrent writers queue instead of failing;
* ``postgresql://user:password@host:port/dbname`` (rewritten to the psycopg 3 driver,
  ``postgresql+psycopg://``) when more than one machine or process writes.

Every error the database raises is translated at this seam into a
:class:`~mailseal.errors.StoreError` with a message a person can act on.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import URL, Engine, create_engine, event, make_url, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session

from mailseal.errors import DuplicateError, StoreError, StoreUnavailable

__all__ = ["MIGRATIONS_DIR", "Database", "is_readonly", "is_unique_violation", "sqlite_url"]

log = logging.getLogger(__name__)

#: Alembic's script directory, shipped inside the package.
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
#: Key taken (transaction-scoped) while migrating PostgreSQL, so that two nodes starting at
#: once do not both create the schema.
_MIGRATION_LOCK_KEY: Final = 0x6D61_696C_7365_616C  # "mailseal"
_SESSION_READONLY: Final = "mailseal.readonly"
_BEGIN_OPTION: Final = "mailseal_sqlite_begin"

Dialect = Literal["sqlite", "postgresql"]


def sqlite_url(data_dir: str | Path, filename: str = "mailseal.db") -> str:
    """The URL of the default SQLite database ``filename`` in ``data_dir``."""
    return URL.create("sqlite", database=str(Path(data_dir) / filename)).render_as_string()


def _enable_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch a SQLite database to WAL (a persistent setting: a no-op once done).

    The switch needs an exclusive lock, and SQLite reports a competing connection with
    SQLITE_BUSY at once instead of calling the busy handler: retry until ``busy_timeout``.
    """
    deadline = time.monotonic() + busy_timeout
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


class Database:
    """One database of mailseal: ``upgrade()`` it once, then work in ``session()`` blocks.

    ``busy_timeout`` (seconds) is how long a SQLite writer waits for another one;
    ``connect_timeout`` (seconds) bounds a PostgreSQL connection attempt.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        busy_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        pool_size: int = 5,
        echo: bool = False,
        audit_key: bytes = b"",
    ) -> None:
        self._busy_timeout = busy_timeout
        #: the key of the audit log's chain (see mailseal.store.audit); set by the opener from
        #: the data directory, never stored in the database
        self.audit_key: bytes = audit_key
        self._url = self._normalise_url(url)
        backend = self._url.get_backend_name()
        self.dialect: Dialect = "sqlite" if backend == "sqlite" else "postgresql"
        try:
            if self.dialect == "sqlite":
                self._engine = self._sqlite_engine(echo=echo)
            else:
                self._engine = create_engine(
                    self._url,
                    echo=echo,
                    pool_pre_ping=True,
                    pool_size=pool_size,
                    connect_args={
                        "connect_timeout": max(1, round(connect_timeout)),
                        "application_name": "mailseal",
                    },
                )
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StoreError(
                f"cannot use database URL {self.url}: {_first_line(exc)}"
                " (is the 'server' extra installed: pip install 'mailseal[server]'?)"
            ) from exc
        self._write_bind = self._engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._read_bind = (
            self._engine.execution_options(postgresql_readonly=True)
            if self.dialect == "postgresql"
            else self._engine
        )

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def _normalise_url(url: str | URL) -> URL:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            raise StoreError(
                f"not a database URL: {url!r}; use sqlite:///path/to/mailseal.db or "
                "postgresql://user:password@host:port/dbname"
            ) from exc
        backend, _, driver = parsed.drivername.partition("+")
        if backend == "sqlite" and driver in ("", "pysqlite"):
            return parsed.set(drivername="sqlite")
        if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
            return parsed.set(drivername="postgresql+psycopg")
        raise StoreError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)}: "
            "mailseal speaks to SQLite (sqlite:///path) and to PostgreSQL through psycopg 3 "
            "(postgresql://user:password@host:port/dbname)"
        )

    def _sqlite_engine(self, *, echo: bool) -> Engine:
        database = self._url.database or ""
        memory = database in ("", ":memory:")
        if not memory and not database.startswith("file:"):
            parent = Path(database).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(
                    f"cannot open SQLite database {database}: directory {parent} does not "
                    "exist; create it or choose another data directory"
                )
        kwargs: dict[str, Any] = {"connect_args": {"timeout": self._busy_timeout}}
        if memory:
            # One connection shared by every thread: an in-memory database lives and dies
            # with its connection.
            kwargs["poolclass"] = pool.StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        engine = create_engine(self._url, echo=echo, **kwargs)
        busy_ms = int(self._busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin
            # (the sqlite3 module would otherwise BEGIN lazily and DEFERRED).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
                cur.execute("PRAGMA foreign_keys = ON")
                if not memory:
                    _enable_wal(cur, self._busy_timeout)
                    cur.execute("PRAGMA synchronous = NORMAL")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction
            # that reads and then writes fails at once with SQLITE_BUSY when another writer
            # got there first, whereas an immediate one waits up to busy_timeout.
            mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    # -- public surface -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL, with any password hidden."""
        return self._url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for the store and for tests)."""
        return self._engine

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back if it raises.

        A ``readonly`` session never commits; on SQLite it does not take the write lock,
        on PostgreSQL it is a READ ONLY transaction. Database errors leave as
        :class:`~mailseal.errors.StoreError`.
        """
        session = Session(
            bind=self._read_bind if readonly else self._write_bind, expire_on_commit=False
        )
        session.info[_SESSION_READONLY] = readonly
        session.info["mailseal.audit.key"] = self.audit_key
        try:
            yield session
            if readonly:
                session.rollback()
            else:
                session.commit()
        except SQLAlchemyError as exc:
            with suppress(SQLAlchemyError):
                session.rollback()
            raise self.translate(exc) from exc
        except BaseException:
            with suppress(SQLAlchemyError):
                session.rollback()
            raise
        finally:
            with suppress(SQLAlchemyError):
                session.close()

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A read-only Core connection for hot-path lookups (no ORM session, no write lock);
        database errors leave as :class:`~mailseal.errors.StoreError`."""
        try:
            with self._read_bind.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def ping(self) -> None:
        """Connect and run a trivial query; raise :class:`StoreUnavailable` if that fails."""
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def upgrade(self, revision: str = "head") -> None:
        """Run the migrations up to ``revision`` (default: the newest). Safe to call on every
        start: an up-to-date database is left alone, and on PostgreSQL two nodes migrating at
        once take turns."""
        try:
            with self._write_bind.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                cfg = self._alembic_config()
                cfg.attributes["connection"] = conn
                cfg.attributes["audit_key"] = self.audit_key
                log.info("migrating %s to schema revision %s", self.url, revision)
                command.upgrade(cfg, revision)
        except CommandError as exc:
            raise StoreError(
                f"cannot migrate the database {self.url}: {_first_line(exc)} "
                "(a database written by a newer mailseal needs that version)"
            ) from exc
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None: no mailseal schema yet)."""
        try:
            with self._engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def head_revision(self) -> str:
        """The newest schema revision this version of mailseal knows."""
        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        assert head is not None
        return head

    def dispose(self) -> None:
        """Close every pooled connection (call at shutdown, and in a child after fork)."""
        self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _alembic_config() -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        return cfg

    def translate(self, exc: SQLAlchemyError) -> StoreError:
        """The :class:`StoreError` that tells a person what went wrong with ``exc``."""
        if isinstance(exc, IntegrityError):
            detail = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
            if is_unique_violation(exc):
                return DuplicateError(f"already stored: {detail}")
            return StoreError(f"the database refused the change: {detail}")
        if not isinstance(exc, DBAPIError) or exc.orig is None:
            return StoreError(f"database error ({self.url}): {_first_line(exc)}")
        orig = exc.orig
        message = _first_line(orig)
        if self.dialect == "sqlite":
            return self._translate_sqlite(message)
        return self._translate_postgresql(exc, orig, message)

    def _translate_sqlite(self, message: str) -> StoreError:
        lowered = message.lower()
        where = self._url.database or ":memory:"
        if "locked" in lowered or "busy" in lowered:
            return StoreUnavailable(
                f"the SQLite database {where} stayed locked for {self._busy_timeout:g}s: "
                "another process is writing to it. Retry; with many concurrent writers use "
                "PostgreSQL"
            )
        if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
            return StoreError(
                f"cannot write the SQLite database {where} ({message}): check that the file "
                "and its directory exist and are writable by this user"
            )
        if "no such table" in lowered or "no such column" in lowered:
            return StoreError(
                f"the database {where} has no (or an outdated) mailseal schema ({message}): "
                "run the migrations first (Database.upgrade())"
            )
        return StoreError(f"SQLite error on {where}: {message}")

    def _translate_postgresql(
        self, exc: DBAPIError, orig: BaseException, message: str
    ) -> StoreError:
        sqlstate = getattr(orig, "sqlstate", None) or _connect_sqlstate(str(orig))
        where = self._where()
        message = message.split("FATAL:", 1)[-1].strip()
        if sqlstate in ("42P01", "42703"):
            return StoreError(
                f"the database {where} has no (or an outdated) mailseal schema ({message}): "
                "run the migrations first (Database.upgrade())"
            )
        if sqlstate == "3D000":
            return StoreError(
                f"PostgreSQL database {self._url.database!r} does not exist on {where}: "
                f"create it (createdb {self._url.database}) or fix the URL"
            )
        if sqlstate.startswith("28"):
            return StoreError(
                f"PostgreSQL at {where} refused the login of user {self._url.username!r} "
                f"({message}): check the user name and password in the database URL"
            )
        if sqlstate in ("40001", "40P01", "55P03", "57014"):
            return StoreUnavailable(
                f"PostgreSQL at {where} aborted the transaction ({message}): retry"
            )
        if exc.connection_invalidated or not sqlstate or sqlstate[:2] in ("08", "57", "53"):
            return StoreUnavailable(
                f"cannot reach PostgreSQL at {where}: {message}. Check that the server is "
                "running and accepts TCP connections there, and that the URL is right"
            )
        return StoreError(f"PostgreSQL error on {where}: {message}")

    def _where(self) -> str:
        host = self._url.host or "localhost"
        port = self._url.port or 5432
        return f"{host}:{port}/{self._url.database or ''}"


def is_unique_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(exc.orig)


# libpq reports a refused connection without a SQLSTATE: recognise the server's FATAL message.
_CONNECT_FAILURES: Final = (
    (re.compile(r'database ".*" does not exist'), "3D000"),
    (re.compile(r'role ".*" does not exist'), "28000"),
    (re.compile(r"authentication failed|no pg_hba\.conf entry|password"), "28P01"),
)


def _connect_sqlstate(message: str) -> str:
    for pattern, sqlstate in _CONNECT_FAILURES:
        if pattern.search(message):
            return sqlstate
    return ""


def is_readonly(session: Session) -> bool:
    """Whether ``session`` came from ``Database.session(readonly=True)``."""
    return bool(session.info.get(_SESSION_READONLY, False))
