"""Store fixtures: every test runs on SQLite and on a real, throwaway PostgreSQL.

The PostgreSQL cluster is started once per test session with ``initdb`` + ``pg_ctl`` on
127.0.0.1 (a free port, its socket directory in a temporary directory, fsync off) and torn down
at the end. PostgreSQL refuses to run as root, so when the tests run as root (CI does) the
cluster runs as the ``postgres`` system user (or ``nobody``) through ``runuser``.

Binaries are looked up in $MAILSEAL_PG_BINDIR, then on PATH, then in Debian's
/usr/lib/postgresql/<version>/bin (package ``postgresql``). Without them the PostgreSQL cases
are skipped, or fail when MAILSEAL_REQUIRE_PEERS=1. Setting MAILSEAL_TEST_POSTGRES_URL to the
URL of an existing server (a user that may CREATE DATABASE) uses that server instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from mailseal.store import Database, sqlite_url

ENGINES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server on which tests may create databases."""

    admin_url: str  # a psycopg conninfo URL to the maintenance database

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL (plain ``postgresql://``)."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_binaries() -> dict[str, Path] | None:
    """initdb and pg_ctl of one PostgreSQL installation, or None."""
    candidates: list[Path] = []
    if os.environ.get("MAILSEAL_PG_BINDIR"):
        candidates.append(Path(os.environ["MAILSEAL_PG_BINDIR"]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    candidates.extend(debian)
    for bindir in candidates:
        tools = {name: bindir / name for name in ("initdb", "pg_ctl", "postgres")}
        if all(os.access(p, os.X_OK) for p in tools.values()):
            return tools
    return None


def _skip_or_fail(msg: str) -> None:
    if os.environ.get("MAILSEAL_REQUIRE_PEERS") == "1":
        pytest.fail(msg + " and MAILSEAL_REQUIRE_PEERS=1", pytrace=False)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that drops root, and the user it drops to."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.fail("running as root and runuser (util-linux) is missing", pytrace=False)
            return [runuser, "-u", user, "--"], user
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists")
    raise AssertionError  # unreachable


@contextlib.contextmanager
def throwaway_cluster(tools: dict[str, Path]) -> Iterator[PostgresServer]:
    """initdb + pg_ctl start in a temporary directory; stop and delete it afterwards."""
    prefix, user = _run_as()
    base = Path(tempfile.mkdtemp(prefix="mailseal-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, sockets, logfile = base / "data", base / "sockets", base / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *map(str, args)],
            check=check,
            capture_output=True,
            text=True,
            env=env,
            cwd=base,
            timeout=120,
        )

    started = False
    try:
        run("mkdir", "-p", sockets)
        init = run(
            tools["initdb"], "-D", data, "-U", "mailseal", "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync", check=False,
        )  # fmt: skip
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}", pytrace=False)
        last_error = ""
        for _attempt in range(3):
            port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {port} -k {sockets} -F "
                "-c max_connections=100 -c full_page_writes=off"
            )
            start = run(
                tools["pg_ctl"], "-D", data, "-l", logfile, "-w", "-t", "60", "-o", options,
                "start", check=False,
            )  # fmt: skip
            if start.returncode == 0:
                started = True
                break
            last_error = start.stdout + start.stderr
            with contextlib.suppress(OSError):
                last_error += logfile.read_text()
        if not started:
            pytest.fail(f"pg_ctl start failed:\n{last_error}", pytrace=False)
        yield PostgresServer(f"postgresql://mailseal@127.0.0.1:{port}/postgres")
    finally:
        if started:
            run(tools["pg_ctl"], "-D", data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session (skips when there is none)."""
    external = os.environ.get("MAILSEAL_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(
            make_url(external).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        return
    tools = find_pg_binaries()
    if tools is None:
        _skip_or_fail(
            "PostgreSQL not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin;"
            " Debian package: postgresql)"
        )
    assert tools is not None
    with throwaway_cluster(tools) as server:
        yield server


_db_names = itertools.count(1)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: ``database_url(engine)`` -> the URL of a new, empty database."""
    created: list[tuple[PostgresServer, str]] = []

    def make(engine: str) -> str:
        if engine == "sqlite":
            n = next(_db_names)
            return sqlite_url(tmp_path, f"mailseal-{n}.db")
        server: PostgresServer = request.getfixturevalue("pg_server")
        name = f"mailseal_test_{os.getpid()}_{next(_db_names)}_{int(time.time())}"
        url = server.create_database(name)
        created.append((server, name))
        return url

    yield make
    for server, name in created:
        with contextlib.suppress(psycopg.Error):
            server.drop_database(name)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each store test runs once per engine."""
    return str(request.param)


@pytest.fixture
def empty_db(engine_name: str, database_url: Callable[[str], str]) -> Iterator[Database]:
    """A Database on a new, empty database (no schema yet)."""
    db = Database(database_url(engine_name), busy_timeout=30)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A Database migrated to the newest schema."""
    empty_db.upgrade()
    return empty_db
