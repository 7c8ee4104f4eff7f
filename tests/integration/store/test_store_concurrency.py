"""What the database guarantees under concurrency, on SQLite and PostgreSQL: one serial is
issued once, CRL numbers never repeat, a job goes to exactly one worker -- with threads and
with separate processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailseal.errors import DuplicateError, MailsealError, StoreError
from mailseal.store import CA, Certificate, Database, Job, Mailbox, Person, repo

T0 = datetime(2026, 1, 1, tzinfo=UTC)
THREADS = 4


def make_ca(db: Database) -> CA:
    with db.session() as s:
        return repo.add_ca(
            s, name="Issuing", role="issuing", certificate_der=b"", subject="CN=Issuing",
            key_ref="/keys/issuing.pem", not_before=T0, not_after=T0 + timedelta(days=365),
        )  # fmt: skip


def run_threads(target: Callable[[int], object], n: int = THREADS) -> list[object]:
    """Run ``target(i)`` in ``n`` threads; return results (or exceptions) in thread order."""
    results: list[object] = [None] * n

    def wrapper(i: int) -> None:
        try:
            results[i] = target(i)
        except BaseException as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a thread hung"
    return results


@pytest.mark.parametrize("path", ["add_certificate", "insert_certificate"])
def test_same_serial_racing_threads_exactly_one_wins(db: Database, path: str) -> None:
    """One serial wins, the others get DuplicateError: through the ORM (add_certificate) and
    through the issuance path's single INSERT (insert_certificate)."""
    ca = make_ca(db)
    barrier = threading.Barrier(THREADS, timeout=60)
    fields: dict[str, Any] = {
        "serial": 0xC0FFEE, "sans": [], "profile": "mailbox-strict", "usage": "signing",
        "key_type": "rsa-2048", "not_before": T0, "not_after": T0, "der": b"x",
    }  # fmt: skip

    def issue(i: int) -> str:
        barrier.wait()
        with db.session() as s:
            if path == "add_certificate":
                repo.add_certificate(s, ca=ca.id, subject=f"CN=thread {i}", **fields)
            else:
                repo.insert_certificate(
                    s, ca_id=ca.id, subject=f"CN=thread {i}", mailbox_id=None, **fields
                )
            time.sleep(0.2)  # hold the uncommitted row while the others try
        return "issued"

    results = run_threads(issue)
    assert Counter(type(r).__name__ if isinstance(r, Exception) else r for r in results) == {
        "issued": 1,
        "DuplicateError": THREADS - 1,
    }, results
    with db.session(readonly=True) as s:
        assert repo.count_rows(s, Certificate) == 1


def test_one_mailbox_for_racing_threads(db: Database) -> None:
    """Threads creating the same mailbox at once all get one mailbox and one person."""
    barrier = threading.Barrier(THREADS, timeout=60)

    def create(i: int) -> int:
        barrier.wait()
        with db.session() as s:
            found = repo.mailbox_id(s, "Shared@example.org", f"person {i}")
            time.sleep(0.2)
            return found

    results = run_threads(create)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    with db.session(readonly=True) as s:
        assert repo.count_rows(s, Mailbox) == 1
        assert repo.count_rows(s, Person) == 1


def test_crl_numbers_never_repeat_across_threads(db: Database) -> None:
    ca = make_ca(db)
    per_thread = 15

    def allocate(_i: int) -> list[int]:
        got = []
        for _ in range(per_thread):
            with db.session() as s:
                got.append(repo.next_crl_number(s, ca.id))
        return got

    results = run_threads(allocate)
    numbers = [n for r in results for n in r]  # type: ignore[attr-defined]
    assert sorted(numbers) == list(range(1, THREADS * per_thread + 1))
    for r in results:  # each thread sees its own numbers increase
        assert r == sorted(r)  # type: ignore[type-var]


def test_job_claims_each_job_to_exactly_one_worker(db: Database) -> None:
    jobs = 40
    with db.session() as s:
        for n in range(jobs):
            repo.enqueue_job(s, "work", {"n": n})

    def worker(i: int) -> list[int]:
        done = []
        while True:
            with db.session() as s:
                job = repo.claim_job(s, f"worker-{i}")
                if job is None:
                    return done
            done.append(job.payload["n"])
            with db.session() as s:
                repo.finish_job(s, job)

    results = run_threads(worker)
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [n for r in results for n in r]  # type: ignore[attr-defined]
    assert sorted(claimed) == list(range(jobs))
    with db.session(readonly=True) as s:
        assert {j.state for j in s.query(Job).all()} == {"done"}


WORKER = textwrap.dedent(
    """
    import sys, time
    from mailseal.errors import DuplicateError
    from mailseal.store import Database, repo
    from datetime import UTC, datetime

    url, mode, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    db = Database(url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    while time.time() < start_at:
        time.sleep(0.005)
    if mode == "issue":
        try:
            with db.session() as s:
                repo.add_certificate(
                    s, ca=1, serial=0xBEEF, subject="CN=p", sans=[], profile="p",
                    usage="signing", key_type="rsa", not_before=t0, not_after=t0, der=b"x")
                time.sleep(0.2)
            print("issued")
        except DuplicateError:
            print("duplicate")
    else:
        for _ in range(10):
            with db.session() as s:
                print(repo.next_crl_number(s, 1))
    db.dispose()
    """
)


def run_processes(url: str, mode: str, n: int = 3) -> list[str]:
    start_at = time.time() + 3.0  # every process has imported and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, mode, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    lines: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        lines.extend(out.split())
    return lines


@pytest.mark.slow
def test_same_serial_racing_processes_exactly_one_wins(db: Database) -> None:
    make_ca(db)
    url = db.engine.url.render_as_string(hide_password=False)
    assert Counter(run_processes(url, "issue")) == {"issued": 1, "duplicate": 2}


@pytest.mark.slow
def test_crl_numbers_never_repeat_across_processes(db: Database) -> None:
    make_ca(db)
    url = db.engine.url.render_as_string(hide_password=False)
    numbers = [int(x) for x in run_processes(url, "crl")]
    assert sorted(numbers) == list(range(1, 31))


def test_duplicate_error_is_a_store_error() -> None:
    assert issubclass(DuplicateError, StoreError)
    assert issubclass(StoreError, MailsealError)


def test_leader_lock_lets_one_node_work(db: Database) -> None:
    """Periodic work runs on one node at a time: on PostgreSQL a second session does not get
    the advisory lock while the first holds it; SQLite (one machine) always says yes."""
    from mailseal.store import repo

    with db.session() as first:
        assert repo.try_leader(first, "mailseal.test")
        with db.session(readonly=True) as second:
            expected = db.dialect != "postgresql"
            assert repo.try_leader(second, "mailseal.test") is expected
            assert repo.try_leader(second, "mailseal.other")
    with db.session(readonly=True) as third:
        assert repo.try_leader(third, "mailseal.test")  # released with the first transaction
