"""The audit log: every kind of tampering with its rows, on SQLite and PostgreSQL, is found by
``audit verify`` and named; signed checkpoints catch a rewrite by someone holding the audit key;
the CLI reports it and exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mailseal.config import Settings
from mailseal.escrow.protect import KdfCost
from mailseal.lifecycle import audit
from mailseal.lifecycle.authority import Authority, Secrets, init_organisation
from mailseal.store.audit import entry_digest

SECRETS = Secrets(passphrase=b"audit test passphrase")
ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(params=ENGINES)
def org(
    request: pytest.FixtureRequest, database_url: Callable[[str], str], tmp_path: Path
) -> Iterator[Authority]:
    url = database_url(request.param) if request.param == "postgresql" else ""
    settings = Settings(
        home=tmp_path / "home",
        organization="Audit Ltd",
        domains=("example.org",),
        database_url=url,
    )
    authority = init_organisation(settings, SECRETS, key_type="p256")
    try:
        authority.init_escrow(2, [("ann", b"ann passphrase"), ("bo", b"bo passphrase")],
                              cost=KdfCost(1, 8 << 20))  # fmt: skip
        for who in ("a", "b", "c"):
            authority.issue(email=f"{who}@example.org")
        authority.revoke(email="b@example.org", reason="affiliationChanged")
        yield authority
    finally:
        authority.close()


def _sql(authority: Authority, statement: str, **params: object) -> None:
    with authority.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _count(authority: Authority) -> int:
    with authority.db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one())


def test_an_untouched_log_verifies(org: Authority) -> None:
    report = audit.verify(org)
    assert report.ok and report.events == _count(org) >= 10
    assert report.checkpoints == 0 and report.unsealed == report.events
    assert audit.checkpoint(org) == report.events
    assert audit.checkpoint(org) is None  # nothing new
    org.issue(email="d@example.org")
    report = audit.verify(org)
    assert report.ok and report.checkpoints == 1 and report.unsealed == 2


def test_a_changed_entry_is_named(org: Authority) -> None:
    _sql(org, "UPDATE audit_events SET subject = 'someone else' WHERE id = 5")
    report = audit.verify(org)
    assert not report.ok and report.problem is not None
    assert (report.problem.event_id, report.problem.kind) == (5, "changed")
    assert "entry 5" in report.problem.message


def test_a_changed_outcome_or_time_is_named(org: Authority) -> None:
    _sql(org, "UPDATE audit_events SET outcome = 'refused' WHERE id = 3")
    problem = audit.verify(org).problem
    assert problem is not None and problem.event_id == 3


def test_a_removed_entry_is_named(org: Authority) -> None:
    _sql(org, "DELETE FROM audit_events WHERE id = 6")
    problem = audit.verify(org).problem
    assert problem is not None and (problem.event_id, problem.kind) == (6, "removed")


def test_an_inserted_entry_is_named(org: Authority) -> None:
    # make room at 4 (two steps, so that no two rows share an id on the way) and insert a
    # forged entry; the forger has no audit key, so they chain it with a guessed one
    _sql(org, "UPDATE audit_events SET id = -id - 1 WHERE id >= 4")
    _sql(org, "UPDATE audit_events SET id = -id WHERE id < 0")
    with org.db.engine.connect() as conn:
        prev = conn.execute(text("SELECT entry_hash FROM audit_events WHERE id = 3")).scalar_one()
        at = conn.execute(text("SELECT at FROM audit_events WHERE id = 3")).scalar_one()
    forged = {"actor": "cli", "action": "certificate.issue", "subject": "x@example.org"}
    from datetime import UTC, datetime

    when = datetime.now(UTC)
    digest = entry_digest(b"guess", event_id=4, at=when, outcome="ok", details={}, prev=prev,
                          **forged)  # fmt: skip
    _sql(
        org,
        "INSERT INTO audit_events (id, at, actor, action, subject, details, outcome, prev_hash,"
        " entry_hash) VALUES (4, :at, :actor, :action, :subject, '{}', 'ok', :prev, :hash)",
        at=at,
        prev=prev,
        hash=digest,
        **forged,
    )
    problem = audit.verify(org).problem
    assert problem is not None and problem.event_id == 4


def test_an_entry_moved_up_is_named(org: Authority) -> None:
    # entry 4 removed and everything after renumbered to close the gap
    _sql(org, "DELETE FROM audit_events WHERE id = 4")
    _sql(org, "UPDATE audit_events SET id = -id + 1 WHERE id > 4")
    _sql(org, "UPDATE audit_events SET id = -id WHERE id < 0")
    problem = audit.verify(org).problem
    assert problem is not None and problem.event_id == 4
    assert problem.kind == "removed" and "entry 5" in problem.message


def test_reordered_entries_are_named(org: Authority) -> None:
    _sql(org, "UPDATE audit_events SET id = -7 WHERE id = 7")
    _sql(org, "UPDATE audit_events SET id = 7 WHERE id = 8")
    _sql(org, "UPDATE audit_events SET id = 8 WHERE id = -7")
    problem = audit.verify(org).problem
    assert problem is not None and problem.event_id == 7


def test_an_appended_entry_without_the_key_is_named(org: Authority) -> None:
    last = _count(org)
    with org.db.engine.connect() as conn:
        prev = conn.execute(
            text("SELECT entry_hash FROM audit_events WHERE id = :i"), {"i": last}
        ).scalar_one()
        at = conn.execute(
            text("SELECT at FROM audit_events WHERE id = :i"), {"i": last}
        ).scalar_one()
    _sql(
        org,
        "INSERT INTO audit_events (id, at, actor, action, subject, details, outcome, prev_hash,"
        " entry_hash) VALUES (:id, :at, 'cli', 'escrow.deliver', 'x', '{}', 'ok', :prev, :h)",
        id=last + 1,
        at=at,
        prev=prev,
        h=b"\x00" * 32,
    )
    problem = audit.verify(org).problem
    assert problem is not None and problem.event_id == last + 1


def test_checkpoints_catch_a_rewrite_with_the_key_and_a_truncation(org: Authority) -> None:
    sealed = audit.checkpoint(org)
    assert sealed is not None
    # someone with the database *and* the audit key changes entry 5 and re-chains everything
    _sql(org, "UPDATE audit_events SET subject = 'rewritten' WHERE id = 5")
    from mailseal.store import audit as chain

    key = org.db.audit_key
    with org.db.session() as s:
        prev = chain.GENESIS
        for e in chain.list_events(s):
            e.prev_hash = prev
            e.entry_hash = entry_digest(
                key,
                event_id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject=e.subject,
                outcome=e.outcome,
                details=e.details,
                prev=prev,
            )
            prev = e.entry_hash
    report = audit.verify(org)
    assert not report.ok and report.problem is not None
    assert report.problem.event_id == sealed and "checkpoint" in report.problem.message


def test_a_truncated_log_is_caught_by_the_checkpoint(org: Authority) -> None:
    sealed = audit.checkpoint(org)
    assert sealed is not None
    _sql(org, "DELETE FROM audit_events WHERE id >= :i", i=sealed - 1)
    report = audit.verify(org)
    assert report.problem is not None and report.problem.kind == "removed"
    assert report.problem.event_id == sealed - 1


def test_a_forged_checkpoint_is_refused(org: Authority) -> None:
    audit.checkpoint(org)
    _sql(org, "UPDATE audit_checkpoints SET signature = :s", s=b"\x30\x06\x02\x01\x01\x02\x01\x01")
    report = audit.verify(org)
    assert not report.ok and "does not verify" in report.checkpoint_problems[0]


def test_cli_audit_verify_names_the_entry(tmp_path: Path) -> None:
    env = {**os.environ, "MAILSEAL_HOME": str(tmp_path / "home"), "CA_PASS": "audit cli pass"}

    def ms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailseal", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    init = ms("init", "--org", "Cli", "--domain", "example.org", "--key-type", "p256",
              "--passphrase-env", "CA_PASS")  # fmt: skip
    assert init.returncode == 0, init.stderr
    issued = ms("issue", "--email", "a@example.org", "--passphrase-env", "CA_PASS",
                "--out", str(tmp_path / "out"), "--p12-password-env", "CA_PASS")  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    assert ms("audit", "checkpoint", "--passphrase-env", "CA_PASS").returncode == 0
    ok = ms("audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    shown = ms("audit", "show", "--json")
    assert shown.returncode == 0 and '"certificate.issue"' in shown.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "home" / "mailseal.db") as conn:
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = 2")
    bad = ms("audit", "verify")
    assert bad.returncode == 1 and "entry 2 was changed" in bad.stdout, bad.stdout
    assert "Traceback" not in bad.stderr
