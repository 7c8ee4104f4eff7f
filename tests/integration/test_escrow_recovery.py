"""Quorum recovery end to end: requests, approvals, delivery as one PKCS#12, what is refused,
what a copy of the data directory and database reveals (nothing), re-sharing, importing."""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import pkcs12

from mailseal.config import Settings
from mailseal.errors import EscrowError, PasswordError, UsageError
from mailseal.escrow import threshold as th
from mailseal.escrow.protect import DeliveryKey, KdfCost, open_partial, open_share
from mailseal.keys.pkcs12 import read_pkcs12
from mailseal.lifecycle import escrow as esc
from mailseal.lifecycle.authority import Authority, Secrets, init_organisation, seal_share_for
from mailseal.store import repo

FAST = KdfCost(1, 8 << 20)
SECRETS = Secrets(passphrase=b"recovery test passphrase")
REQUESTER_PW = b"requester's password"
OFFICERS = ["ann", "bo", "cy", "di", "ed", "fay", "gus"]


def _phrase(name: str) -> bytes:
    return f"{name}'s share passphrase".encode()


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Authority]:
    settings = Settings(home=tmp_path / "h", organization="Recovery Ltd", domains=("example.org",))
    authority = init_organisation(settings, SECRETS, key_type="p256")
    try:
        yield authority
    finally:
        authority.close()


def _init(authority: Authority, m: int, n: int) -> dict[str, bytes]:
    officers = [(name, _phrase(name)) for name in OFFICERS[:n]]
    return dict(authority.init_escrow(m, officers, cost=FAST))


def _request(authority: Authority, email: str, **kw: Any) -> esc.RequestView:
    return esc.request_recovery(
        authority,
        email=email,
        serials=kw.pop("serials", None),
        reason=kw.pop("reason", "mailbox owner left"),
        password=kw.pop("password", REQUESTER_PW),
        requester="helpdesk",
        cost=FAST,
        **kw,
    )


def _approve(authority: Authority, request_id: str, files: dict[str, bytes], name: str) -> Any:
    return esc.approve(authority, request_id, files[name], passphrase=_phrase(name))


def _deliver(authority: Authority, request_id: str, password: bytes = REQUESTER_PW) -> bytes:
    out: list[bytes] = []
    esc.deliver(authority, request_id, password, out.append, iterations=2048)
    return out[0]


def _encryption_keys(issued: list[Any]) -> list[Any]:
    return [i for i in issued if i.usage == "encryption"]


# -- the quorum -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("m", "n"), [(2, 2), (2, 3), (3, 5), (4, 7)])
def test_m_minus_one_approvals_deliver_nothing_and_m_deliver_every_key(
    org: Authority, m: int, n: int
) -> None:
    files = _init(org, m, n)
    issued = org.issue(email="eve@example.org")
    issued += org.renew(email="eve@example.org")
    issued += org.renew(email="eve@example.org")
    view = _request(org, "eve@example.org")
    assert len(view.serials) == 3 and view.state == "open"
    # the last officers approve: any M of them are a quorum
    approvers = OFFICERS[:n][-m:]
    for name in approvers[:-1]:
        _approve(org, view.request_id, files, name)
    with pytest.raises(EscrowError, match=f"{m - 1} of the {m} approvals"):
        _deliver(org, view.request_id)
    ready = _approve(org, view.request_id, files, approvers[-1])
    assert ready.state == "ready" and ready.approvals == tuple(approvers)
    contents = read_pkcs12(_deliver(org, view.request_id), REQUESTER_PW)
    want = {i.serial: i for i in _encryption_keys(issued)}
    got = {format(e.certificate.serial_number, "x"): e for e in contents.entries}
    assert set(got) == set(want)
    for serial, entry in got.items():
        assert entry.key.public_key() == want[serial].certificate.public_key()
    assert esc.status(org, view.request_id)[0].state == "delivered"


def test_refusals(org: Authority, tmp_path: Path) -> None:
    files = _init(org, 2, 3)
    org.issue(email="eve@example.org")
    view = _request(org, "eve@example.org")
    rid = view.request_id
    # a share of another escrow set (another organisation's)
    other_settings = Settings(home=tmp_path / "o", organization="Other", domains=("example.org",))
    other = init_organisation(other_settings, SECRETS, key_type="p256")
    try:
        other_files = _init(other, 2, 3)
    finally:
        other.close()
    with pytest.raises(EscrowError, match="another escrow set"):
        esc.approve(org, rid, other_files["ann"], passphrase=_phrase("ann"))
    # a wrong passphrase
    with pytest.raises(PasswordError):
        esc.approve(org, rid, files["ann"], passphrase=b"not ann's passphrase")
    # the same officer twice
    _approve(org, rid, files, "ann")
    with pytest.raises(EscrowError, match=r"approved .* already"):
        _approve(org, rid, files, "ann")
    assert esc.status(org, rid)[0].approvals == ("ann",)
    _approve(org, rid, files, "bo")
    # a wrong requester password opens nothing and does not close the request
    with pytest.raises(PasswordError):
        _deliver(org, rid, b"a guessed password")
    assert esc.status(org, rid)[0].state == "ready"
    _deliver(org, rid)
    # not replayable, and no approval of a completed request
    with pytest.raises(EscrowError, match="delivered already"):
        _deliver(org, rid)
    with pytest.raises(EscrowError, match="delivered"):
        _approve(org, rid, files, "cy")
    # an expired request
    late = _request(org, "eve@example.org", expires_in=_dt.timedelta(minutes=1))
    with org.db.session() as s:
        row = repo.get_recovery_request(s, late.request_id)
        assert row is not None
        row.expires_at = _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=1)
    with pytest.raises(EscrowError, match="expired"):
        _approve(org, late.request_id, files, "ann")
    assert esc.status(org, late.request_id)[0].state == "expired"
    # bad requests
    with pytest.raises(UsageError, match="no archived key"):
        _request(org, "nobody@example.org")
    with pytest.raises(UsageError, match="serial"):
        _request(org, "eve@example.org", serials=["abcdef"])
    with pytest.raises(UsageError, match="why"):
        _request(org, "eve@example.org", reason="  ")
    with pytest.raises(UsageError, match="no recovery request"):
        _approve(org, "0123456789abcdef", files, "bo")
    # every refusal is in the audit log
    with org.db.session(readonly=True) as s:
        refused = [
            (e.action, repr(e.details))
            for e in repo.list_audit_events(s, limit=1000)
            if e.outcome == "refused"
        ]
    actions = [a for a, _ in refused]
    assert actions.count("escrow.approve") >= 5 and actions.count("escrow.deliver") == 2
    assert actions.count("escrow.request") == 3
    for _, details in refused:  # no secret in the log
        for secret in (REQUESTER_PW, b"a guessed password", _phrase("ann")):
            assert secret.decode() not in details


def test_a_recovery_opens_only_the_person_asked_for(org: Authority) -> None:
    files = _init(org, 2, 3)
    eve = _encryption_keys(org.issue(email="eve@example.org"))
    bob = _encryption_keys(org.issue(email="bob@example.org"))
    view = _request(org, "eve@example.org")
    for name in ("ann", "bo"):
        _approve(org, view.request_id, files, name)
    # what the participants hold: the requester's delivery key and the officers' partials
    with org.db.session(readonly=True) as s:
        req = repo.get_recovery_request(s, view.request_id)
        assert req is not None
        d = req.delivery
        key = DeliveryKey(
            bytes.fromhex(d["salt"]),
            KdfCost(d["opslimit"], d["memlimit"]),
            bytes.fromhex(d["public_key"]),
        ).check(REQUESTER_PW)
        partials = [
            open_partial(base64.b64decode(v), key)
            for a in req.approvals
            for v in __import__("json").loads(a.payload).values()
        ]
        escrow = esc.escrow_from_row(req.escrow_set)
        bob_rows = repo.escrow_history(s, "bob@example.org")
        assert len(bob_rows) == len(bob) == 1
        for row in bob_rows:
            for combo in (partials[:2], partials[-2:], partials):
                with pytest.raises(EscrowError):
                    th.open_record(escrow, esc.record_id_for(row), esc._sealed(row), combo)
    p12 = _deliver(org, view.request_id)
    entries = read_pkcs12(p12, REQUESTER_PW).entries
    assert [e.certificate.serial_number for e in entries] == [
        i.certificate.serial_number for i in eve
    ]


# -- at rest --------------------------------------------------------------------------------------
def _snapshot(authority: Authority, target: Path) -> Path:
    """A copy of the data directory (with the database, checkpointed) as an attacker takes it."""
    with sqlite3.connect(authority.settings.home / "mailseal.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    shutil.copytree(authority.settings.home, target)
    return target


def _values(snapshot: Path) -> Iterator[bytes]:
    """Every file, and every value stored in the database, in raw and decoded forms."""
    for path in snapshot.rglob("*"):
        if path.is_file():
            yield from _decodings(path.read_bytes())
    with sqlite3.connect(snapshot / "mailseal.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for cell in row:
                    yield from _decodings(cell)


def _decodings(cell: Any) -> Iterator[bytes]:
    if cell is None or isinstance(cell, int | float):
        return
    raw = cell if isinstance(cell, bytes) else str(cell).encode()
    yield raw
    text = raw.decode("latin-1")
    import json
    import re

    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    strings = [text]
    if doc is not None:
        stack = [doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str):
                strings.append(item)
    for s in strings:
        for token in re.findall(r"[0-9a-fA-F]{32,}", s):
            yield bytes.fromhex(token[: len(token) // 2 * 2])
        for token in re.findall(r"[A-Za-z0-9+/=]{40,}", s):
            with contextlib.suppress(ValueError):
                yield base64.b64decode(token, validate=True)


def _attack(snapshot: Path, escrow: th.EscrowSet, records: list[Any], secrets: list[bytes]) -> None:
    """Try every stored value as the escrow key, as a share, as a record key or as a record's
    key point, and look for the escrowed keys themselves."""
    values = list(_values(snapshot))
    blob = b"\n".join(values)
    for secret in secrets:
        assert secret not in blob
        key = serialization.load_der_private_key(secret, None)
        scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
        assert scalar not in blob
        assert (
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            not in blob
        )
    windows: set[bytes] = set()
    for v in values:
        if len(v) <= 8192:  # database cells and small files: every 32-byte window
            windows.update(v[i : i + 32] for i in range(0, max(len(v) - 31, 0)))
    points = set(escrow.verification) | {escrow.public_key}
    for w in windows:
        n = int.from_bytes(w, "little")
        if 0 < n < th.L:
            assert th._base(n) not in points, "a stored value is the escrow key or a share"
        for rid, rec in records:
            for k in (w, _record_key_from_point(w, rid, rec.ephemeral)):
                try:
                    AESGCM(k).decrypt(rec.nonce, rec.ciphertext, b"mailseal-escrow-v2" + rid)
                except (InvalidTag, ValueError):
                    continue
                raise AssertionError("a stored value opens an escrow record")


def _record_key_from_point(point: bytes, rid: bytes, ephemeral: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"mailseal-escrow-v2",
        info=b"mailseal-escrow-v2|record|" + rid + b"|" + ephemeral,
    ).derive(point)


def test_a_copy_of_everything_at_rest_recovers_nothing(org: Authority, tmp_path: Path) -> None:
    files = _init(org, 3, 4)
    issued = _encryption_keys(org.issue(email="eve@example.org"))
    issued += _encryption_keys(org.renew(email="eve@example.org"))
    issued += _encryption_keys(org.issue(email="bob@example.org"))
    secrets = [
        i.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for i in issued
    ]
    with org.db.session(readonly=True) as s:
        escrow = esc.escrow_from_row(repo.active_escrow_set(s))
        records = [
            (esc.record_id_for(r), esc._sealed(r))
            for email in ("eve@example.org", "bob@example.org")
            for r in repo.escrow_history(s, email)
        ]
    assert len(records) == 3
    snapshots = [_snapshot(org, tmp_path / "before")]
    view = _request(org, "eve@example.org")
    _approve(org, view.request_id, files, "ann")
    _approve(org, view.request_id, files, "cy")
    snapshots.append(_snapshot(org, tmp_path / "m-1"))
    _approve(org, view.request_id, files, "di")
    _deliver(org, view.request_id)
    snapshots.append(_snapshot(org, tmp_path / "after"))
    for snap in snapshots:
        _attack(snap, escrow, records, secrets)
    # the attack finds what it looks for: a share left in a file of the data directory
    leaked = _snapshot(org, tmp_path / "leaked")
    share = open_share(files["ann"], _phrase("ann"), escrow)
    (leaked / "notes.txt").write_text(f"ann's share {share.value.hex()}\n")
    with pytest.raises(AssertionError, match="escrow key or a share"):
        _attack(leaked, escrow, records, secrets)
    # after delivery nothing of the recovery stays: the sealed partials are erased
    with org.db.session(readonly=True) as s:
        req = repo.get_recovery_request(s, view.request_id)
        assert req is not None and all(a.payload == b"" for a in req.approvals)


# -- re-sharing -----------------------------------------------------------------------------------
def test_resharing_makes_the_old_shares_useless(org: Authority) -> None:
    files = _init(org, 2, 3)
    issued = _encryption_keys(org.issue(email="eve@example.org"))
    pending = _request(org, "eve@example.org")
    old = esc.escrow_from_row(org.active_escrow_set())
    old_shares = [open_share(files[n], _phrase(n), old) for n in ("ann", "bo")]
    with org.db.session(readonly=True) as s:
        (row,) = repo.escrow_history(s, "eve@example.org")
        rid, before = esc.record_id_for(row), esc._sealed(row)
    with pytest.raises(EscrowError, match="re-sharing needs 2 shares"):
        esc.reshare(
            org, old_shares[:1], threshold=2, officers=[(n, _sealer(b"x" * 8)) for n in "xy"]
        )
    new_names = ["bo", "di", "ed"]
    new_files = dict(
        esc.reshare(
            org,
            old_shares,
            threshold=2,
            officers=[(n, _sealer(_phrase(n) + b"-new")) for n in new_names],
        )
    )
    # the pending request of the old set is cancelled
    assert esc.status(org, pending.request_id)[0].state == "cancelled"
    new = esc.escrow_from_row(org.active_escrow_set())
    assert new.set_id != old.set_id and new.public_key != old.public_key
    with org.db.session(readonly=True) as s:
        (row,) = repo.escrow_history(s, "eve@example.org")
        after = esc._sealed(row)
    assert after.ciphertext == before.ciphertext and after.masked != before.masked
    # the old quorum, even offline with the database, opens nothing any more ...
    old_partials = [th.partial_decrypt(old, sh, after) for sh in old_shares]
    with pytest.raises(EscrowError):
        th.open_record(old, rid, after, old_partials)
    # ... and cannot approve; the new officers can
    view = _request(org, "eve@example.org")
    with pytest.raises(EscrowError, match="another escrow set"):
        _approve(org, view.request_id, files, "ann")
    for n in ("di", "ed"):
        esc.approve(org, view.request_id, new_files[n], passphrase=_phrase(n) + b"-new")
    (entry,) = read_pkcs12(_deliver(org, view.request_id), REQUESTER_PW).entries
    assert entry.key.public_key() == issued[0].certificate.public_key()
    # archival continues to the new set
    org.issue(email="eve@example.org")
    assert {h["escrow_set"] for h in org.escrow_history("eve@example.org")} == {new.set_id.hex()}


def _sealer(phrase: bytes) -> Callable[[th.EscrowSet, th.Share], tuple[bytes, str]]:
    return lambda e, sh: seal_share_for(e, sh, phrase, cost=FAST)


# -- importing ------------------------------------------------------------------------------------
def _p12(key: Any, cert: x509.Certificate, password: bytes = b"import pw") -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"x", key, cert, None, serialization.BestAvailableEncryption(password)
    )


def test_import_archives_encryption_keys_and_refuses_signing_keys(org: Authority) -> None:
    from mailseal.pki.testpki import TestPKI

    files = _init(org, 2, 2)
    pki = TestPKI.create()
    enc = pki.user("old@example.org", usage="encryption")
    sign = pki.user("old@example.org", usage="signing")
    dual = pki.user("old@example.org")
    with pytest.raises(EscrowError, match="signing only"):
        esc.import_pkcs12(org, _p12(sign.key, sign.cert), b"import pw")
    with pytest.raises(EscrowError, match="allow-dual-use"):
        esc.import_pkcs12(org, _p12(dual.key, dual.cert), b"import pw")
    with pytest.raises(PasswordError):
        esc.import_pkcs12(org, _p12(enc.key, enc.cert), b"wrong")
    (item,) = esc.import_pkcs12(org, _p12(enc.key, enc.cert), b"import pw")
    assert item["email"] == "old@example.org"
    with pytest.raises(EscrowError, match="archived already"):
        esc.import_pkcs12(org, _p12(enc.key, enc.cert), b"import pw")
    # a key issued here and handed over (a signing certificate of ours) is refused too
    ours = org.issue(email="eve@example.org", usage="signing")[0]
    with pytest.raises(EscrowError, match="signing"):
        esc.import_pkcs12(org, _p12(ours.key, ours.certificate), b"import pw")
    history = org.escrow_history("old@example.org")
    assert [(h["source"], h["serial"]) for h in history] == [
        ("imported", format(enc.cert.serial_number, "x"))
    ]
    view = _request(org, "old@example.org")
    for n in ("ann", "bo"):
        _approve(org, view.request_id, files, n)
    (entry,) = read_pkcs12(_deliver(org, view.request_id), REQUESTER_PW).entries
    assert entry.certificate == enc.cert
    assert entry.key.public_key() == enc.cert.public_key()


# -- the CLI --------------------------------------------------------------------------------------
def test_cli_recovery_with_a_certificate_officer(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from mailseal.pki.testpki import TestPKI

    pki = TestPKI.create(key_type="p256")
    officer = pki.user("cy@example.org", key_type="p256", usage="encryption")
    (tmp_path / "cy.crt").write_bytes(officer.cert_pem)
    (tmp_path / "cy.key").write_bytes(officer.key_pem)
    env = {
        **os.environ,
        "MAILSEAL_HOME": str(tmp_path / "home"),
        "MAILSEAL_ACTOR": "helpdesk",
        "CA_PASS": "cli ca passphrase",
        "P12_PASS": "issued p12 password",
        "MAILSEAL_SHARE_PASSPHRASE_ANN": "ann's share passphrase",
        "REQ_PW": "the requester's password",
    }

    def ms(*args: str | Path, code: int = 0) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "mailseal", *(str(a) for a in args)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        if code == 2:
            assert proc.stderr.count("\n") == 1, proc.stderr  # one clear line
        return proc.stdout + proc.stderr

    ms("init", "--org", "Cli Ltd", "--domain", "example.org", "--key-type", "p256",
       "--passphrase-env", "CA_PASS")  # fmt: skip
    out = ms("escrow", "init", "--threshold", "2", "--officer", "ann",
             "--officer", f"cy={tmp_path / 'cy.crt'}", "--out", tmp_path / "shares")  # fmt: skip
    assert "share for cy" in out
    share_cy = json.loads((tmp_path / "shares" / "share-cy.json").read_text())
    assert share_cy["protection"] == "certificate"
    for _ in range(2):
        ms("issue", "--email", "eve@example.org", "--passphrase-env", "CA_PASS",
           "--out", tmp_path / f"i{_}", "--p12-password-env", "P12_PASS")  # fmt: skip
    history = json.loads(ms("escrow", "history", "--email", "eve@example.org", "--json"))
    assert len(history) == 2
    request = ms("escrow", "request", "--email", "eve@example.org", "--serial",
                 history[0]["serial"], "--reason", "legal hold", "--password-env",
                 "REQ_PW").splitlines()[0]  # fmt: skip
    ms("escrow", "request", "--email", "eve@example.org", "--reason", "x", code=2)
    ms("escrow", "approve", request, "--share", tmp_path / "shares" / "share-cy.json",
       "--passphrase-env", "MAILSEAL_SHARE_PASSPHRASE_ANN", code=2)  # fmt: skip
    ms("escrow", "approve", request, "--share", tmp_path / "shares" / "share-cy.json",
       "--officer-key", tmp_path / "cy.key")  # fmt: skip
    ms("escrow", "deliver", request, "--out", tmp_path / "early.p12", "--password-env",
       "REQ_PW", code=2)  # fmt: skip
    ms("escrow", "approve", request, "--share", tmp_path / "shares" / "share-ann.json",
       "--passphrase-env", "MAILSEAL_SHARE_PASSPHRASE_ANN")  # fmt: skip
    ms("escrow", "approve", request, "--share", tmp_path / "shares" / "share-cy.json",
       "--officer-key", tmp_path / "cy.key", code=2)  # fmt: skip
    status = json.loads(ms("escrow", "status", request, "--json"))[0]
    assert status["state"] == "ready" and status["approvals"] == ["ann", "cy"]
    assert status["requester"] == "helpdesk" and status["keys"] == [history[0]["serial"]]
    ms("escrow", "deliver", request, "--out", tmp_path / "eve.p12", "--password-env", "REQ_PW")
    listed = ms("pkcs12", "list", tmp_path / "eve.p12", "--password-env", "REQ_PW")
    assert history[0]["serial"] in listed and history[1]["serial"] not in listed
    ms("escrow", "deliver", request, "--out", tmp_path / "again.p12", "--password-env",
       "REQ_PW", code=2)  # fmt: skip
    # importing an existing PKCS#12 file: an encryption key is archived, a signing one refused
    enc = pki.user("old@example.org", key_type="p256", usage="encryption")
    sign = pki.user("old@example.org", key_type="p256", usage="signing")
    (tmp_path / "enc.p12").write_bytes(enc.pkcs12(b"import pass", chain=pki.chain))
    (tmp_path / "sign.p12").write_bytes(sign.pkcs12(b"import pass", chain=pki.chain))
    env["IMPORT_PW"] = "import pass"
    assert "archived" in ms("escrow", "import", "--p12", tmp_path / "enc.p12",
                            "--password-env", "IMPORT_PW")  # fmt: skip
    assert "signing only" in ms("escrow", "import", "--p12", tmp_path / "sign.p12",
                                "--password-env", "IMPORT_PW", code=2)  # fmt: skip
    log = json.loads(ms("audit", "show", "--json"))
    actions = [(e["action"], e["outcome"]) for e in log]
    for wanted in [("escrow.init", "ok"), ("escrow.request", "ok"), ("escrow.approve", "ok"),
                   ("escrow.approve", "refused"), ("escrow.deliver", "ok"),
                   ("escrow.deliver", "refused"), ("escrow.import", "ok"),
                   ("escrow.import", "refused")]:  # fmt: skip
        assert wanted in actions, wanted
    assert {e["actor"] for e in log} <= {"helpdesk", "ann", "cy", "init"}, {e["actor"] for e in log}
    assert "intact" in ms("audit", "verify")
    for secret in ("ann's share passphrase", "the requester's password", "cli ca passphrase"):
        assert secret not in json.dumps(log)
