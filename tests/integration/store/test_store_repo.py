"""Repository behaviour on both engines: CAs, mailboxes, certificates, revocation, CRLs, OCSP,
jobs, audit, and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailseal.errors import DuplicateError, StoreError, UsageError
from mailseal.store import CA, Certificate, Database, Mailbox, RevokedEntry, repo, serial_hex

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_ca(db: Database, name: str = "Issuing CA 1") -> CA:
    with db.session() as s:
        return repo.add_ca(
            s,
            name=name,
            role="issuing",
            certificate_der=b"\x30\x03\x02\x01\x01",
            subject=f"CN={name}",
            key_ref="pkcs11:token=ca;object=issuing-1",
            not_before=T0,
            not_after=T0 + timedelta(days=3650),
        )


def issue(
    db: Database,
    ca: CA,
    serial: int,
    *,
    address: str = "alice@example.org",
    usage: str = "signing",
    not_after: datetime | None = None,
) -> Certificate:
    with db.session() as s:
        mailbox = repo.get_or_create_person_mailbox(s, address, address.split("@")[0].title())
        return repo.add_certificate(
            s,
            ca=ca,
            serial=serial,
            subject=f"CN={address}",
            sans=[address],
            profile="mailbox-strict",
            usage=usage,
            key_type="rsa-2048",
            not_before=T0,
            not_after=not_after or T0 + timedelta(days=365),
            der=serial.to_bytes(20, "big"),
            mailbox=mailbox,
        )


def test_serial_hex_spellings() -> None:
    assert serial_hex(0x0A1B) == serial_hex("0x0A1B") == serial_hex("0a:1b") == "a1b"
    assert serial_hex(0) == "0"
    with pytest.raises(UsageError):
        serial_hex("xyz")
    with pytest.raises(UsageError):
        serial_hex(-1)


def test_ca_roundtrip(db: Database) -> None:
    ca = make_ca(db)
    make_ca(db, "Root CA")
    with db.session(readonly=True) as s:
        got = repo.get_ca(s, "Issuing CA 1")
        assert got is not None and got.id == ca.id
        assert repo.get_ca(s, ca.id) is not None
        assert repo.get_ca(s, "nope") is None
        assert [c.name for c in repo.get_cas(s)] == ["Issuing CA 1", "Root CA"]
        assert got.key_ref.startswith("pkcs11:")
        assert got.crl_number == 0 and got.status == "active"
    with pytest.raises(DuplicateError, match="Issuing CA 1"):
        make_ca(db)
    with pytest.raises(UsageError), db.session() as s:
        repo.add_ca(
            s, name="x", role="intermediate", certificate_der=b"", subject="", key_ref="",
            not_before=T0, not_after=T0,
        )  # fmt: skip


def test_person_mailbox_lowercased_and_reused(db: Database) -> None:
    with db.session() as s:
        first = repo.get_or_create_person_mailbox(s, " Alice@Example.ORG ", "Alice")
        assert first.address == "alice@example.org"
    with db.session() as s:
        again = repo.get_or_create_person_mailbox(s, "ALICE@example.org", "Someone else")
        assert again.id == first.id
        assert again.person.name == "Alice"
        assert repo.get_mailbox(s, "alice@EXAMPLE.org") is not None
    with pytest.raises(UsageError), db.session() as s:
        repo.get_or_create_person_mailbox(s, "not an address", "X")


def test_certificate_add_and_find(db: Database) -> None:
    ca = make_ca(db)
    other = make_ca(db, "Issuing CA 2")
    signing = issue(db, ca, 0x01AB)
    issue(db, ca, 0x02, usage="encryption")
    issue(db, other, 0x01AB, address="bob@example.org")  # same serial, other CA: fine
    assert signing.serial == "1ab"
    with db.session(readonly=True) as s:
        got = repo.get_certificate(s, ca, "0x01ab")
        assert got is not None and got.id == signing.id
        assert got.sans == ["alice@example.org"]
        assert got.der == (0x01AB).to_bytes(20, "big")
        assert got.key_ref is None
        assert {c.ca_id for c in repo.find_certificates_by_serial(s, 0x1AB)} == {ca.id, other.id}
        mine = repo.certificates_for_mailbox(s, "Alice@example.org")
        assert {c.usage for c in mine} == {"signing", "encryption"}
        mailbox = repo.get_mailbox(s, "alice@example.org")
        assert isinstance(mailbox, Mailbox)
        enc = repo.certificates_for_mailbox(s, mailbox, usage="encryption")
        assert [c.serial for c in enc] == ["2"]
        assert len(repo.certificates_by_status(s, "valid")) == 3
        assert len(repo.certificates_by_status(s, "valid", ca=other)) == 1


def test_duplicate_serial_refused(db: Database) -> None:
    ca = make_ca(db)
    issue(db, ca, 0xABCDEF)
    with pytest.raises(DuplicateError, match="already issued serial abcdef"):
        issue(db, ca, 0xABCDEF, address="bob@example.org")
    with db.session(readonly=True) as s:
        assert repo.count_rows(s, Certificate) == 1


def test_issuance_path_statements(db: Database) -> None:
    """The Core statements of Authority.issue: mailbox created once and reused, certificate
    rows as add_certificate makes them, a repeated serial refused with nothing kept."""
    ca = make_ca(db)
    with db.session() as s:
        box = repo.mailbox_id(s, " Carol@Example.ORG ", "Carol")
        assert repo.mailbox_id(s, "carol@example.org", "Someone else") == box
        row_id = repo.insert_certificate(
            s, ca_id=ca.id, serial=0x0BEEF, subject="CN=carol", sans=["carol@example.org"],
            profile="mailbox-strict", usage="encryption", key_type="ec-p256", not_before=T0,
            not_after=T0 + timedelta(days=30), der=b"\x30\x00", mailbox_id=box,
        )  # fmt: skip
        repo.add_ocsp_response(
            s, ca.id, 0x0BEEF, produced_at=T0, next_update=T0 + timedelta(days=1), der=b"r"
        )
    with db.session(readonly=True) as s:
        got = repo.get_certificate(s, ca, "beef")
        assert got is not None and got.id == row_id
        assert got.mailbox is not None and got.mailbox.id == box
        assert got.mailbox.person.name == "Carol"
        assert got.sans == ["carol@example.org"] and got.status == "valid"
        assert got.not_after == T0 + timedelta(days=30)
        assert repo.get_ocsp_response(s, ca, "beef") is not None
    with pytest.raises(DuplicateError, match="already issued serial beef"), db.session() as s:
        other = repo.mailbox_id(s, "dave@example.org", "Dave")
        repo.insert_certificate(
            s, ca_id=ca.id, serial=0xBEEF, subject="CN=dave", sans=[], profile="mailbox-strict",
            usage="signing", key_type="ec-p256", not_before=T0, not_after=T0, der=b"",
            mailbox_id=other,
        )  # fmt: skip
    with db.session(readonly=True) as s:
        assert repo.count_rows(s, Certificate) == 1
        assert repo.get_mailbox(s, "dave@example.org") is None  # the whole transaction went
    with pytest.raises(UsageError), db.session() as s:
        repo.mailbox_id(s, "not an address", "X")
    with pytest.raises(UsageError), db.session(readonly=True) as s:
        repo.mailbox_id(s, "erin@example.org", "Erin")


def test_duplicate_keeps_the_transaction_usable(db: Database) -> None:
    ca = make_ca(db)
    issue(db, ca, 7)
    with db.session() as s:
        with pytest.raises(DuplicateError):
            repo.add_certificate(
                s, ca=ca, serial=7, subject="CN=x", sans=[], profile="p", usage="dual",
                key_type="ec-p256", not_before=T0, not_after=T0, der=b"x",
            )  # fmt: skip
        repo.append_audit(s, actor="test", action="issue.refused", subject="serial 7")
    with db.session(readonly=True) as s:
        assert [e.action for e in repo.list_audit_events(s)] == ["issue.refused"]


def test_expiring(db: Database) -> None:
    ca = make_ca(db)
    issue(db, ca, 1, not_after=T0 + timedelta(days=10))
    issue(db, ca, 2, not_after=T0 + timedelta(days=40))
    issue(db, ca, 3, not_after=T0 - timedelta(days=1))  # expired already
    soon = issue(db, ca, 4, not_after=T0 + timedelta(days=5))
    with db.session() as s:
        repo.revoke(s, soon, reason="superseded", at=T0)
    with db.session(readonly=True) as s:
        within_30 = repo.expiring_certificates(s, within=30, now=T0)
        assert [c.serial for c in within_30] == ["1"]
        assert within_30[0].mailbox is not None
        assert [
            c.serial for c in repo.expiring_certificates(s, within=timedelta(days=60), now=T0)
        ] == [
            "1",
            "2",
        ]


def test_revoke_flow(db: Database) -> None:
    ca = make_ca(db)
    cert = issue(db, ca, 0x10)
    issue(db, ca, 0x11)
    at = T0 + timedelta(days=3)
    with db.session() as s:
        rev = repo.revoke(s, cert, reason="keyCompromise", at=at, invalidity_date=T0)
        assert cert.status == "revoked"
    assert rev.crl_number is None
    with db.session(readonly=True) as s:
        stored = repo.get_certificate(s, ca, 0x10)
        assert stored is not None and stored.status == "revoked"
        assert stored.revocation is not None and stored.revocation.reason == "keyCompromise"
        assert list(repo.revoked_entries(s, ca)) == [
            RevokedEntry(serial=0x10, revoked_at=at, reason="keyCompromise", invalidity_date=T0)
        ]
        assert [c.serial for c in repo.certificates_by_status(s, "revoked")] == ["10"]
    with pytest.raises(DuplicateError, match="already revoked"), db.session() as s:
        repo.revoke(s, cert, reason="superseded", at=at)
    with pytest.raises(UsageError, match="revocation reason"), db.session() as s:
        repo.revoke(s, cert, reason="because", at=at)


def test_revoke_is_atomic(db: Database) -> None:
    """A failure after the status flip rolls the flip back too."""
    ca = make_ca(db)
    cert = issue(db, ca, 0x20)
    with pytest.raises(RuntimeError), db.session() as s:
        repo.revoke(s, cert, reason="keyCompromise", at=T0)
        raise RuntimeError("crash before commit")
    with db.session(readonly=True) as s:
        stored = repo.get_certificate(s, ca, 0x20)
        assert stored is not None and stored.status == "valid" and stored.revocation is None


def test_revoked_entries_stream_in_batches(db: Database) -> None:
    ca = make_ca(db)
    other = make_ca(db, "Other")
    with db.session() as s:
        for n in range(1, 251):
            c = repo.add_certificate(
                s, ca=ca if n % 5 else other, serial=n, subject="CN=x", sans=[], profile="p",
                usage="signing", key_type="rsa-2048", not_before=T0, not_after=T0, der=b"x",
            )  # fmt: skip
            if n % 2:
                repo.revoke(s, c, reason="cessationOfOperation", at=T0 + timedelta(seconds=n))
    with db.session(readonly=True) as s:
        entries = list(repo.revoked_entries(s, ca, batch_size=16))
    expected = [n for n in range(1, 251) if n % 2 and n % 5]
    assert [e.serial for e in entries] == expected
    assert all(isinstance(e, tuple) and e.revoked_at.tzinfo is UTC for e in entries)


def test_crl_numbers_and_storage(db: Database) -> None:
    ca = make_ca(db)
    with db.session() as s:
        assert [repo.next_crl_number(s, ca) for _ in range(3)] == [1, 2, 3]
        assert ca.crl_number == 3
        repo.store_crl(s, ca, number=1, this_update=T0, next_update=T0 + timedelta(days=7),
                       der=b"crl1")  # fmt: skip
        repo.store_crl(s, ca, number=3, this_update=T0, next_update=T0 + timedelta(days=7),
                       der=b"crl3")  # fmt: skip
        repo.store_crl(s, ca, number=2, delta_base=1, this_update=T0,
                       next_update=T0 + timedelta(days=1), der=b"delta2")  # fmt: skip
    with pytest.raises(DuplicateError), db.session() as s:
        repo.store_crl(s, ca, number=3, this_update=T0, next_update=T0, der=b"again")
    with db.session(readonly=True) as s:
        latest = repo.latest_crl(s, ca)
        assert latest is not None and latest.der == b"crl3"
        delta = repo.latest_crl(s, ca, delta=True)
        assert delta is not None and delta.der == b"delta2" and delta.delta_base == 1
        assert repo.latest_crl(s, make_ca_id(s)) is None
        got = repo.get_crl(s, ca, 1)
        assert got is not None and got.next_update == T0 + timedelta(days=7)
    with pytest.raises(UsageError), db.session(readonly=True) as s:
        repo.next_crl_number(s, ca)
    with pytest.raises(StoreError, match="does not exist"), db.session() as s:
        repo.next_crl_number(s, 999)


def make_ca_id(s: object) -> int:
    return 424242


def test_ocsp_upsert(db: Database) -> None:
    ca = make_ca(db)
    with db.session() as s:
        repo.put_ocsp_response(s, ca, 0x99, produced_at=T0, next_update=T0 + timedelta(hours=1),
                               der=b"first")  # fmt: skip
    with db.session() as s:
        repo.put_ocsp_response(s, ca, "99", produced_at=T0 + timedelta(minutes=5),
                               next_update=T0 + timedelta(hours=2), der=b"second")  # fmt: skip
        # an older response arriving late does not replace the newer one
        repo.put_ocsp_response(s, ca, 0x99, produced_at=T0 - timedelta(minutes=5),
                               next_update=T0, der=b"stale")  # fmt: skip
        repo.put_ocsp_response(s, ca, 0x98, produced_at=T0, next_update=T0, der=b"other")
    with db.session(readonly=True) as s:
        got = repo.get_ocsp_response(s, ca, 0x99)
        assert got is not None and got.der == b"second"
        assert got.produced_at == T0 + timedelta(minutes=5)
        assert repo.get_ocsp_response(s, ca, 0x97) is None
        assert repo.ocsp_responses_due(s, before=T0 + timedelta(minutes=30)) == [(ca.id, "98")]


def test_jobs_lifecycle(db: Database) -> None:
    with db.session() as s:
        first = repo.enqueue_job(s, "crl.refresh", {"ca": 1})
        repo.enqueue_job(s, "ocsp.presign", {"ca": 1}, run_after=T0 + timedelta(days=10000))
        repo.enqueue_job(s, "alerts", {})
    with db.session() as s:
        job = repo.claim_job(s, "worker-1", kinds=["crl.refresh"])
        assert job is not None and job.id == first.id
        assert job.state == "running" and job.locked_by == "worker-1" and job.attempts == 1
        assert job.payload == {"ca": 1}
    with db.session() as s:
        repo.finish_job(s, job, error="HSM offline", retry_at=T0)
    assert job.state == "queued" and job.last_error == "HSM offline"
    with db.session() as s:
        again = repo.claim_job(s, "worker-2")
        assert again is not None and again.id == first.id and again.attempts == 2
        repo.finish_job(s, again)
    with pytest.raises(StoreError, match="not running"), db.session() as s:
        repo.finish_job(s, first.id)
    with db.session() as s:
        alerts = repo.claim_job(s, "worker-3")
        assert alerts is not None and alerts.kind == "alerts"
        # the presign job is not due yet
        assert repo.claim_job(s, "worker-3") is None
        repo.finish_job(s, alerts, error="boom")
    with db.session(readonly=True) as s:
        states = {j.kind: j.state for j in s.query(type(first)).all()}
    assert states == {"crl.refresh": "done", "ocsp.presign": "queued", "alerts": "failed"}


def test_stale_jobs_requeued(db: Database) -> None:
    with db.session() as s:
        repo.enqueue_job(s, "k", {})
    with db.session() as s:
        assert repo.claim_job(s, "dead-worker", now=T0) is None  # not due yet
        job = repo.claim_job(s, "dead-worker")
        assert job is not None
    with db.session() as s:
        assert repo.requeue_stale_jobs(s, older_than=timedelta(minutes=10)) == 0
        later = datetime.now(UTC) + timedelta(hours=1)
        assert repo.requeue_stale_jobs(s, older_than=timedelta(minutes=10), now=later) == 1
    with db.session() as s:
        assert repo.claim_job(s, "live-worker") is not None


def test_audit(db: Database) -> None:
    with db.session() as s:
        repo.append_audit(s, actor="admin", action="ca.create", subject="Issuing CA 1",
                          details={"key_ref": "pkcs11:..."}, at=T0)  # fmt: skip
        repo.append_audit(s, actor="admin", action="cert.revoke", subject="serial 10")
    with db.session(readonly=True) as s:
        events = repo.list_audit_events(s)
        assert [e.action for e in events] == ["ca.create", "cert.revoke"]
        assert events[0].details == {"key_ref": "pkcs11:..."} and events[0].at == T0
        assert [e.action for e in repo.list_audit_events(s, since=T0 + timedelta(days=1))] == [
            "cert.revoke"
        ]


def test_aware_datetimes_roundtrip(db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2030, 6, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    with db.session() as s:
        ca = repo.add_ca(s, name="tz", role="root", certificate_der=b"", subject="", key_ref="k",
                         not_before=local, not_after=T0)  # fmt: skip
    with db.session(readonly=True) as s:
        got = repo.get_ca(s, ca.id)
        assert got is not None
        assert got.not_before == local
        assert got.not_before.tzinfo is UTC
        assert got.not_before.hour == 12 and got.not_before.microsecond == 123456
        assert got.not_after == T0 and got.not_after.tzinfo is UTC
        assert got.created_at.tzinfo is UTC
    with pytest.raises(UsageError, match="timezone-aware"), db.session() as s:
        repo.add_ca(s, name="naive", role="root", certificate_der=b"", subject="", key_ref="k",
                    not_before=datetime(2030, 1, 1), not_after=T0)  # fmt: skip
