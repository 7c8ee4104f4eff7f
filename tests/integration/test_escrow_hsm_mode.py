"""HSM-mode key escrow end to end, as a user runs it: ``mailseal init`` with the CA keys in a
SoftHSM2 token, ``escrow init --hsm``, issuance and renewals archived to the token's escrow key,
``escrow request / approve / deliver`` through the CLI in subprocesses, and what the token, the
data directory and the audit log hold afterwards.

SoftHSM2 reads its configuration once per process, so everything that touches the token runs
in a subprocess with ``SOFTHSM2_CONF`` pointing at a throwaway configuration and token directory
under pytest's temporary directory (nothing touches /var/lib/softhsm); this process never loads
the module. The in-process calls below (a tampered approval must be refused before the HSM is
used) hand ``deliver`` a stand-in token that fails on any use.

Cases: 2 of 3 officers recover every archived key of a person (issued, renewed twice) as one
PKCS#12 that matches the issued keys (read by mailseal and by openssl), one approval is not
enough and a second delivery is refused; a key imported from another CA's PKCS#12 is recovered;
an approval-key file of another escrow set, the same officer twice, a wrong passphrase, a
missing or wrong PIN, a wrong requester password and re-sharing an HSM-mode set are refused
with one line and exit code 2; an altered signature, an approval moved to another officer and a
signature copied from another officer's approval are refused before the HSM is used, without
closing the request; the escrow key is sensitive, non-extractable and derive-only in the token;
neither the data directory nor the token directory holds an escrowed key in the clear; the
audit log verifies and records every step and refusal; a CA with file keys cannot use HSM mode.

Needs SoftHSM2 (Debian package ``softhsm2``) and python-pkcs11: skipped without them, failed
when MAILSEAL_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from mailseal.config import Settings
from mailseal.errors import EscrowError
from mailseal.keys.pkcs11 import parse_key_uri
from mailseal.keys.pkcs12 import read_pkcs12
from mailseal.lifecycle import escrow as esc
from mailseal.lifecycle.authority import Authority
from mailseal.pki.testpki import TestPKI

from ._softhsm import private_softhsm

MAILSEAL = [sys.executable, "-m", "mailseal"]
TIMEOUT = 120
TOKEN = "mailseal-ca"
PIN = "7391-escrow-pin"  # distinctive: searched for in the data directory
SO_PIN = "8264-escrow-so"
WRONG_PIN = "0000-not-the-pin"
P12_PASSWORD = "issued p12 password"
REQUESTER_PASSWORD = "requester's delivery password"
WRONG_PASSWORD = "someone else's password"
OFFICERS = ("ann", "bo", "cy")
EMAIL = "eve@example.org"
OLD_EMAIL = "old@example.org"


def _phrase(name: str) -> str:
    return f"{name}'s approval key passphrase"


@dataclass
class Issued:
    serial: str
    certificate: x509.Certificate
    pkcs8: bytes  # the private key's PKCS#8 DER, as issued
    scalar: bytes  # the raw private scalar


@dataclass
class Org:
    """An organisation with its CA keys and its escrow key in a SoftHSM2 token."""

    base: Path
    home: Path
    env: dict[str, str]
    module: Path
    tokens: Path
    approval_keys: Path
    encryption: list[Issued] = field(default_factory=list)
    imported: list[Issued] = field(default_factory=list)  # an older key from another CA
    signing_serials: list[str] = field(default_factory=list)

    def run(
        self, *args: str | Path, ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*MAILSEAL, *(str(a) for a in args)],
            env=env if env is not None else self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def refused(
        self, *args: str | Path, env: dict[str, str] | None = None, match: str
    ) -> subprocess.CompletedProcess[str]:
        """Run a command that must fail cleanly: exit code 2, one line on stderr naming the
        problem, no traceback."""
        proc = self.run(*args, ok=False, env=env)
        assert proc.returncode == 2, f"{args}: {proc.stdout}\n{proc.stderr}"
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("mailseal: error: "), proc.stderr
        assert match in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        return proc

    def approve(self, request_id: str, key_file: Path, officer: str) -> str:
        """``escrow approve`` by ``officer`` with ``key_file``: stdout."""
        return self.run(
            "escrow", "approve", request_id, "--share", key_file,
            "--passphrase-env", _env(officer),
        ).stdout  # fmt: skip

    def key_file(self, officer: str, directory: Path | None = None) -> Path:
        return (directory or self.approval_keys) / f"share-{officer}.json"

    def status(self, request_id: str) -> dict[str, Any]:
        views = json.loads(self.run("escrow", "status", request_id, "--json").stdout)
        assert len(views) == 1
        return views[0]  # type: ignore[no-any-return]

    def db(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(sqlite3.connect(self.home / "mailseal.db"))


def _env(officer: str) -> str:
    return f"MAILSEAL_SHARE_PASSPHRASE_{officer.upper()}"


def _issued(org: Org, out: Path, items: list[dict[str, Any]]) -> None:
    """Record what ``issue``/``renew --json --out OUT`` issued, the keys read back from the
    PKCS#12 files written to ``out``."""
    for item in items:
        if item["usage"] == "signing":
            org.signing_serials.append(item["serial"])
            continue
        assert item["usage"] == "encryption" and item["server_generated_key"]
        contents = read_pkcs12((out / "eve-encryption.p12").read_bytes(), P12_PASSWORD.encode())
        issued = _issued_entry(contents)
        assert issued.serial == item["serial"]
        org.encryption.append(issued)


def _issued_entry(contents: Any) -> Issued:
    """The one key of a PKCS#12 file read by read_pkcs12."""
    (entry,) = contents.entries
    key = entry.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Issued(
        serial=format(entry.certificate.serial_number, "x"),
        certificate=entry.certificate,
        pkcs8=key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        scalar=key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big"),
    )


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    """CA keys in SoftHSM2, an HSM-mode escrow set (2 of ann, bo, cy), and one person issued
    a pair and renewed twice: three archived encryption keys."""
    base = tmp_path_factory.mktemp("hsm-escrow")
    hsm = private_softhsm(base, (TOKEN,), pin=PIN, so_pin=SO_PIN)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILSEAL_")},
        "SOFTHSM2_CONF": str(hsm.conf),
        "MAILSEAL_HOME": str(base / "home"),
        "MAILSEAL_ACTOR": "helpdesk",
        "HSM_PIN": PIN,
        "P12_PASSWORD": P12_PASSWORD,
        "REQUESTER_PASSWORD": REQUESTER_PASSWORD,
        "WRONG_PASSWORD": WRONG_PASSWORD,
        **{_env(name): _phrase(name) for name in OFFICERS},
    }
    if os.environ.get("MAILSEAL_REQUIRE_PEERS"):
        env["MAILSEAL_REQUIRE_PEERS"] = os.environ["MAILSEAL_REQUIRE_PEERS"]
    org = Org(base, base / "home", env, hsm.module, base / "tokens", base / "approval-keys")
    org.run(
        "init", "--org", "Hsm Escrow Ltd", "--domain", "example.org", "--key-type", "p256",
        "--pkcs11-module", hsm.module, "--pkcs11-token", TOKEN, "--pin-env", "HSM_PIN",
    )  # fmt: skip
    officers = [a for name in OFFICERS for a in ("--officer", name)]
    out = org.run(
        "escrow", "init", "--hsm", "--threshold", "2", *officers, "--out", org.approval_keys,
        "--pin-env", "HSM_PIN",
    )  # fmt: skip
    assert "HSM mode" in out.stdout
    for n, command in enumerate(("issue", "renew", "renew"), 1):
        target = base / f"issued-{n}"
        proc = org.run(
            command, "--email", EMAIL, "--out", target, "--p12-password-env", "P12_PASSWORD",
            "--json",
        )  # fmt: skip
        _issued(org, target, json.loads(proc.stdout))
    assert len(org.encryption) == 3 and len(org.signing_serials) == 3

    # an encryption key from before, issued by another CA, imported into the HSM-mode set
    old = TestPKI.create(key_type="p256").user(OLD_EMAIL, key_type="p256", usage="encryption")
    assert isinstance(old.key, ec.EllipticCurvePrivateKey)
    p12 = base / "old.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"old", old.key, old.cert, None,
            serialization.BestAvailableEncryption(P12_PASSWORD.encode()),
        )
    )  # fmt: skip
    items = json.loads(
        org.run("escrow", "import", "--p12", p12, "--password-env", "P12_PASSWORD", "--json").stdout
    )
    assert [i["email"] for i in items] == [OLD_EMAIL]
    org.imported.append(_issued_entry(read_pkcs12(p12.read_bytes(), P12_PASSWORD.encode())))
    return org


@dataclass
class Recovery:
    request_id: str
    request: dict[str, Any]
    history: list[dict[str, Any]]
    steps: dict[str, subprocess.CompletedProcess[str]]
    states: dict[str, dict[str, Any]]
    written: dict[str, bool]
    p12: Path


@pytest.fixture(scope="module")
def recovery(org: Org) -> Recovery:
    """The whole workflow through the CLI: history, a request for every key, one approval,
    a delivery that must be refused, the second approval, the delivery, a second delivery."""
    steps: dict[str, subprocess.CompletedProcess[str]] = {}
    states: dict[str, dict[str, Any]] = {}
    history = json.loads(org.run("escrow", "history", "--email", EMAIL, "--json").stdout)
    steps["history"] = org.run("escrow", "history", "--email", EMAIL)
    request = json.loads(
        org.run(
            "escrow", "request", "--email", EMAIL, "--all", "--reason", "eve left; mail archive",
            "--password-env", "REQUESTER_PASSWORD", "--json",
        ).stdout
    )  # fmt: skip
    rid = request["request"]
    p12 = org.base / "recovered.p12"
    deliver = ("escrow", "deliver", rid, "--out", p12, "--password-env", "REQUESTER_PASSWORD")
    steps["approve ann"] = org.run(
        "escrow", "approve", rid, "--share", org.key_file("ann"), "--passphrase-env", _env("ann")
    )
    states["after one approval"] = org.status(rid)
    steps["deliver early"] = org.run(*deliver, "--pin-env", "HSM_PIN", ok=False)
    written = {"early": p12.exists()}
    steps["approve bo"] = org.run(
        "escrow", "approve", rid, "--share", org.key_file("bo"), "--passphrase-env", _env("bo")
    )
    states["after two approvals"] = org.status(rid)
    steps["deliver"] = org.run(*deliver, "--pin-env", "HSM_PIN", ok=False)
    again = org.base / "recovered-again.p12"
    steps["deliver again"] = org.run(
        "escrow", "deliver", rid, "--out", again, "--password-env", "REQUESTER_PASSWORD",
        "--pin-env", "HSM_PIN", ok=False,
    )  # fmt: skip
    written["again"] = again.exists()
    states["after delivery"] = org.status(rid)
    return Recovery(rid, request, history, steps, states, written, p12)


def _one_error_line(proc: subprocess.CompletedProcess[str], match: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailseal: error: "), proc.stderr
    assert match in lines[0] and "Traceback" not in proc.stderr, proc.stderr


# -- 1. the workflow ------------------------------------------------------------------------------
def test_approval_key_files_are_private_and_encrypted(org: Org) -> None:
    for name in OFFICERS:
        path = org.key_file(name)
        assert path.stat().st_mode & 0o777 == 0o600
        data = path.read_bytes()
        doc = json.loads(data)
        assert doc["format"] == "mailseal-escrow-approval-key" and doc["kdf"]["name"] == "argon2id"
        assert _phrase(name).encode() not in data
    with org.db() as conn:
        ((mode, officers, approval_keys, key_ref),) = conn.execute(
            "SELECT mode, officers, approval_keys, key_ref FROM escrow_sets"
        ).fetchall()
    assert mode == "hsm" and json.loads(officers) == list(OFFICERS)
    # only the public halves are registered, one per officer, in the officers' order
    registered = json.loads(approval_keys)
    assert registered == [json.loads(org.key_file(n).read_bytes())["public_key"] for n in OFFICERS]
    assert parse_key_uri(key_ref)[0] == TOKEN


def test_two_of_three_officers_recover_every_archived_key(org: Org, recovery: Recovery) -> None:
    serials = [i.serial for i in org.encryption]
    # history: the three encryption keys, in order; no signing key is ever archived
    assert [h["serial"] for h in recovery.history] == serials
    assert {h["source"] for h in recovery.history} == {"issued"}
    assert not set(org.signing_serials) & {h["serial"] for h in recovery.history}
    assert recovery.steps["history"].stdout.count("valid") == 3

    request = recovery.request
    assert request["mode"] == "hsm" and request["threshold"] == 2
    assert request["keys"] == serials and request["state"] == "open"

    assert "1 of 2 approvals (ann); state open" in recovery.steps["approve ann"].stdout
    assert recovery.states["after one approval"]["approvals"] == ["ann"]
    # one approval: refused, one clear line, nothing written
    _one_error_line(recovery.steps["deliver early"], "has 1 of the 2 approvals it needs")
    assert not recovery.written["early"]
    assert "2 of 2 approvals (ann, bo); state ready" in recovery.steps["approve bo"].stdout
    assert recovery.states["after two approvals"]["state"] == "ready"

    deliver = recovery.steps["deliver"]
    assert deliver.returncode == 0, deliver.stdout + deliver.stderr
    assert f"3 key(s) of {EMAIL}" in deliver.stdout
    assert recovery.p12.stat().st_mode & 0o777 == 0o600
    contents = read_pkcs12(recovery.p12.read_bytes(), REQUESTER_PASSWORD.encode())
    assert contents.mac_verified
    got = {format(e.certificate.serial_number, "x"): e for e in contents.entries}
    assert sorted(got) == sorted(serials)
    for issued in org.encryption:
        entry = got[issued.serial]
        assert entry.certificate == issued.certificate
        assert (
            entry.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            == issued.pkcs8
        )
    issuing = x509.load_pem_x509_certificate((org.home / "ca" / "issuing.crt").read_bytes())
    assert issuing in contents.extra_certificates

    # a second delivery is refused: the request is closed
    _one_error_line(recovery.steps["deliver again"], "was delivered already")
    assert not recovery.written["again"]
    closed = recovery.states["after delivery"]
    assert closed["state"] == "delivered" and closed["closed_at"] is not None
    with org.db() as conn:
        payloads = conn.execute(
            "SELECT a.payload FROM recovery_approvals a JOIN recovery_requests r"
            " ON a.request_id = r.id WHERE r.request_id = ?",
            (recovery.request_id,),
        ).fetchall()
    assert len(payloads) == 2 and all(bytes(p) == b"" for (p,) in payloads)


def test_openssl_reads_the_delivered_pkcs12(org: Org, recovery: Recovery) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    assert recovery.steps["deliver"].returncode == 0
    proc = subprocess.run(
        [openssl, "pkcs12", "-in", recovery.p12, "-passin", "env:REQUESTER_PASSWORD",
         "-nocerts", "-nodes"],
        env=org.env, capture_output=True, check=False, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pems = [
        serialization.load_pem_private_key(b"-----BEGIN PRIVATE KEY-----" + chunk, None)
        for chunk in proc.stdout.split(b"-----BEGIN PRIVATE KEY-----")[1:]
    ]
    der = {
        k.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for k in pems
    }
    assert der == {i.pkcs8 for i in org.encryption}


# -- 2. refusals ----------------------------------------------------------------------------------
class _Tripwire:
    """Stands in for the HSM token: any use of it is recorded and fails the test."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        raise RuntimeError(f"the HSM was used ({name}) before the approvals were checked")


def _deliver_in_process(org: Org, request_id: str, token: Any) -> list[bytes]:
    authority = Authority.open(Settings.load(org.home))
    try:
        out: list[bytes] = []
        esc.deliver(
            authority, request_id, REQUESTER_PASSWORD.encode(), out.append,
            iterations=2048, token=token,
        )  # fmt: skip
        return out
    finally:
        authority.close()


def _approvals(org: Org, request_id: str) -> dict[str, tuple[int, int, bytes]]:
    """officer name -> (row id, officer index, payload) of the request's approvals."""
    with org.db() as conn:
        rows = conn.execute(
            "SELECT a.id, a.officer, a.officer_index, a.payload FROM recovery_approvals a"
            " JOIN recovery_requests r ON a.request_id = r.id WHERE r.request_id = ?",
            (request_id,),
        ).fetchall()
    return {officer: (row_id, index, bytes(payload)) for row_id, officer, index, payload in rows}


def _state(org: Org, request_id: str) -> tuple[str, Any]:
    with org.db() as conn:
        row = conn.execute(
            "SELECT state, closed_at FROM recovery_requests WHERE request_id = ?", (request_id,)
        ).fetchone()
    return (row[0], row[1])


def _update(org: Org, sql: str, *params: Any) -> None:
    with org.db() as conn, conn:
        conn.execute(sql, params)


def _flip_signature_byte(payload: bytes) -> bytes:
    doc = json.loads(payload)
    signature = bytearray(base64.b64decode(doc["signature"]))
    signature[10] ^= 0x01
    return json.dumps({"signature": base64.b64encode(bytes(signature)).decode()}).encode()


def test_refusals(org: Org, tmp_path: Path) -> None:
    first = org.encryption[0].serial
    proc = org.run(
        "escrow", "request", "--email", EMAIL, "--serial", first, "--reason", "legal hold",
        "--password-env", "REQUESTER_PASSWORD",
    )  # fmt: skip
    rid = proc.stdout.strip()
    approve = ("escrow", "approve", rid, "--share")

    # an approval-key file of another escrow set (a later HSM-mode set of this organisation)
    other = tmp_path / "other-set"
    org.run(
        "escrow", "init", "--hsm", "--threshold", "2", "--officer", "ann", "--officer", "bo",
        "--out", other,
    )  # fmt: skip
    org.refused(
        *approve, org.key_file("ann", other), "--passphrase-env", _env("ann"),
        match="not an officer's of this request's escrow set",
    )  # fmt: skip
    # an HSM-mode set has no shares: re-sharing is refused, naming the mode
    org.refused(
        "escrow", "reshare", "--share", org.key_file("ann", other), "--share",
        org.key_file("bo", other), "--threshold", "2", "--officer", "dee", "--officer", "fay",
        "--out", tmp_path / "reshared", match="re-sharing is for threshold escrow sets",
    )  # fmt: skip
    assert not (tmp_path / "reshared").exists()
    # a wrong passphrase
    org.refused(
        *approve, org.key_file("bo"), "--passphrase-env", _env("ann"), match="wrong passphrase"
    )
    # the same officer twice
    org.approve(rid, org.key_file("ann"), "ann")
    org.refused(
        *approve, org.key_file("ann"), "--passphrase-env", _env("ann"),
        match=f"officer ann has approved request {rid} already",
    )  # fmt: skip
    view = org.status(rid)
    assert view["approvals"] == ["ann"] and view["state"] == "open"
    assert "2 of 2 approvals (ann, bo); state ready" in org.approve(rid, org.key_file("bo"), "bo")

    out = tmp_path / "out.p12"
    deliver = ("escrow", "deliver", rid, "--out", out, "--password-env", "REQUESTER_PASSWORD")
    # without the PIN: the organisation's settings name HSM_PIN, which is not set
    no_pin = {k: v for k, v in org.env.items() if k != "HSM_PIN"}
    org.refused(*deliver, env=no_pin, match="HSM PIN")
    # a wrong PIN: refused by the token, the PIN not echoed
    wrong = org.refused(*deliver, env={**org.env, "HSM_PIN": WRONG_PIN}, match="wrong PIN")
    assert WRONG_PIN not in wrong.stderr and PIN not in wrong.stderr
    # someone else's password: only the requester takes delivery
    org.refused(
        "escrow", "deliver", rid, "--out", out, "--password-env", "WRONG_PASSWORD",
        "--pin-env", "HSM_PIN", match="wrong password for this recovery request",
    )  # fmt: skip
    assert not out.exists()

    # approvals tampered with in the database: refused before the HSM is used, request left open
    approvals = _approvals(org, rid)
    (ann_id, ann_index, ann_payload), (bo_id, bo_index, bo_payload) = (
        approvals["ann"],
        approvals["bo"],
    )
    assert (ann_index, bo_index) == (1, 2)
    set_payload = "UPDATE recovery_approvals SET payload = ? WHERE id = ?"
    set_index = "UPDATE recovery_approvals SET officer_index = ? WHERE id = ?"

    def swap_indexes() -> None:
        _update(org, set_index, -1, ann_id)
        _update(org, set_index, 1, bo_id)
        _update(org, set_index, 2, ann_id)

    def restore() -> None:
        _update(org, set_index, -1, ann_id)
        _update(org, set_index, 2, bo_id)
        _update(org, set_index, 1, ann_id)
        _update(org, set_payload, ann_payload, ann_id)
        _update(org, set_payload, bo_payload, bo_id)

    tamperings: dict[str, tuple[Callable[[], None], str]] = {
        "one byte of ann's signature": (
            lambda: _update(org, set_payload, _flip_signature_byte(ann_payload), ann_id),
            "approval signature does not verify",
        ),
        "ann's and bo's officer indexes swapped": (
            swap_indexes,
            "approval signature does not verify",
        ),
        "ann's approval moved to cy": (
            lambda: _update(org, set_index, 3, ann_id),
            "approval signature does not verify",
        ),
        "ann's signature copied into bo's approval": (
            lambda: _update(org, set_payload, ann_payload, bo_id),
            "approval signature does not verify",
        ),
        "an approval by an officer the set does not have": (
            lambda: _update(org, set_index, 4, ann_id),
            "approval by an unknown officer",
        ),
        "a payload that is not an approval": (
            lambda: _update(org, set_payload, b"\x00not json", bo_id),
            "approval is damaged",
        ),
    }
    via_cli = {"one byte of ann's signature", "ann's and bo's officer indexes swapped"}
    for what, (tamper, message) in tamperings.items():
        tamper()
        try:
            if what in via_cli:  # as a user meets it: one line, exit code 2, no file
                org.refused(*deliver, "--pin-env", "HSM_PIN", match=message)
                assert not out.exists(), what
            tripwire = _Tripwire()
            with pytest.raises(EscrowError, match=message):
                _deliver_in_process(org, rid, tripwire)
            assert tripwire.used == [], what
            assert _state(org, rid) == ("ready", None), what
        finally:
            restore()
    assert _approvals(org, rid) == approvals

    # untouched, the request was never closed by the refusals: it delivers
    org.run(*deliver, "--pin-env", "HSM_PIN")
    (entry,) = read_pkcs12(out.read_bytes(), REQUESTER_PASSWORD.encode()).entries
    assert format(entry.certificate.serial_number, "x") == first
    assert org.status(rid)["state"] == "delivered"


def test_an_imported_key_is_recovered(org: Org, tmp_path: Path) -> None:
    (old,) = org.imported
    (history,) = json.loads(org.run("escrow", "history", "--email", OLD_EMAIL, "--json").stdout)
    assert (history["serial"], history["source"]) == (old.serial, "imported")
    rid = org.run(
        "escrow", "request", "--email", OLD_EMAIL, "--all", "--reason", "old mail",
        "--password-env", "REQUESTER_PASSWORD",
    ).stdout.strip()  # fmt: skip
    for name in ("cy", "ann"):
        org.approve(rid, org.key_file(name), name)
    out = tmp_path / "old.p12"
    org.run(
        "escrow", "deliver", rid, "--out", out, "--password-env", "REQUESTER_PASSWORD",
        "--pin-env", "HSM_PIN",
    )  # fmt: skip
    (entry,) = read_pkcs12(out.read_bytes(), REQUESTER_PASSWORD.encode()).entries
    assert entry.certificate == old.certificate
    assert (
        entry.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        == old.pkcs8
    )


def test_init_needs_the_pin(org: Org, tmp_path: Path) -> None:
    no_pin = {k: v for k, v in org.env.items() if k != "HSM_PIN"}
    org.refused(
        "escrow", "init", "--hsm", "--threshold", "2", "--officer", "ann", "--officer", "bo",
        "--out", tmp_path / "k", env=no_pin, match="HSM PIN",
    )  # fmt: skip
    assert not (tmp_path / "k").exists()


def test_hsm_mode_needs_the_ca_keys_in_an_hsm(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILSEAL_")},
        "MAILSEAL_HOME": str(tmp_path / "home"),
        "CA_PASS": "file keys passphrase",
        **{_env(name): _phrase(name) for name in OFFICERS},
    }
    org = Org(tmp_path, tmp_path / "home", env, Path(), Path(), tmp_path / "k")
    org.run(
        "init", "--org", "File Keys Ltd", "--domain", "example.org", "--key-type", "p256",
        "--passphrase-env", "CA_PASS",
    )  # fmt: skip
    org.refused(
        "escrow", "init", "--hsm", "--threshold", "2", "--officer", "ann", "--officer", "bo",
        "--out", org.approval_keys, match="keeps its key in the CA's HSM",
    )  # fmt: skip
    assert not org.approval_keys.exists()
    assert json.loads(org.run("audit", "show", "--json").stdout)[-1]["action"] == "ca.init"


# -- 3. what the token and the data directory hold ------------------------------------------------
_TOKEN_SCRIPT = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute as A, ObjectClass

module, token_label, pin, labels = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
token = pkcs11.lib(module).get_token(token_label=token_label)
out = {}
with token.open(user_pin=pin) as session:
    for label in labels:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        found = {
            name: bool(key[getattr(A, name)])
            for name in ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE",
                         "DERIVE", "SIGN", "DECRYPT", "UNWRAP", "TOKEN", "PRIVATE")
        }
        found["key_type"] = key.key_type.name
        try:
            key[A.VALUE]
            found["value"] = "readable"
        except pkcs11.exceptions.AttributeSensitive:
            found["value"] = "sensitive"
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
        found["ec_point"] = bytes(public[A.EC_POINT]).hex()
        out[label] = found
    out["secret keys"] = len(list(session.get_objects({A.CLASS: ObjectClass.SECRET_KEY})))
    out["data objects"] = len(list(session.get_objects({A.CLASS: ObjectClass.DATA})))
print(json.dumps(out))
"""


def test_escrow_key_is_sensitive_and_non_extractable_in_the_token(org: Org) -> None:
    with org.db() as conn:
        sets = conn.execute("SELECT key_ref, public_key FROM escrow_sets WHERE mode = 'hsm'")
        refs = {parse_key_uri(ref)[1]: bytes(spki) for ref, spki in sets.fetchall()}
    assert refs and all(label.startswith("mailseal-escrow-") for label in refs)
    proc = subprocess.run(
        [sys.executable, "-c", _TOKEN_SCRIPT, os.path.realpath(org.module), TOKEN, PIN, *refs],
        env=org.env, capture_output=True, text=True, check=False, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for label, spki in refs.items():
        found = report[label]
        assert found["SENSITIVE"] and found["ALWAYS_SENSITIVE"], found
        assert not found["EXTRACTABLE"] and found["NEVER_EXTRACTABLE"], found
        assert found["DERIVE"], found
        assert not (found["SIGN"] or found["DECRYPT"] or found["UNWRAP"]), found
        assert found["TOKEN"] and found["PRIVATE"], found
        assert found["key_type"] == "EC" and found["value"] == "sensitive", found
        # the public key the records are sealed to is the token key's
        public = serialization.load_der_public_key(spki)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        point = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert point in bytes.fromhex(found["ec_point"])
    # no derived secret and no escrowed key was ever stored on the token
    assert report["secret keys"] == 0 and report["data objects"] == 0


def test_no_escrowed_key_in_the_clear_anywhere(org: Org, tmp_path: Path) -> None:
    # a copy of the data directory, as someone who took a backup would have it
    copy = tmp_path / "copy"
    shutil.copytree(org.home, copy)
    raw = b"".join(p.read_bytes() for p in copy.rglob("*") if p.is_file())
    # the token directory too: the escrowed keys never enter the HSM
    raw_token = b"".join(p.read_bytes() for p in org.tokens.rglob("*") if p.is_file())
    assert len(raw) > 10_000 and raw_token
    for issued in org.encryption + org.imported:
        for haystack in (raw, raw_token):
            assert issued.pkcs8 not in haystack
            assert issued.scalar not in haystack
    for secret in (PIN, REQUESTER_PASSWORD, P12_PASSWORD, *map(_phrase, OFFICERS)):
        assert secret.encode() not in raw
    # every archived record is an HSM-mode record: ephemeral P-384 point, wrapped data key
    with org.db() as conn:
        rows = conn.execute(
            "SELECT r.ephemeral, r.wrapped_key, r.masked, r.ciphertext, s.mode"
            " FROM escrow_records r JOIN escrow_sets s ON r.escrow_set_id = s.id"
        ).fetchall()
    assert len(rows) == len(org.encryption) + len(org.imported) == 4
    for ephemeral, wrapped, masked, ciphertext, mode in rows:
        assert mode == "hsm" and masked is None
        assert len(ephemeral) == 97 and ephemeral[0] == 4 and len(wrapped) == 40
        assert len(ciphertext) == len(org.encryption[0].pkcs8) + 16


# -- 4. the audit log -----------------------------------------------------------------------------
def test_audit_log_verifies_and_records_every_step(org: Org, recovery: Recovery) -> None:
    # one more refusal: approving a delivered request
    org.refused(
        "escrow", "approve", recovery.request_id, "--share", org.key_file("cy"),
        "--passphrase-env", _env("cy"), match="delivered: it cannot be approved",
    )  # fmt: skip
    verified = org.run("audit", "verify")
    assert verified.stdout.startswith("audit log intact"), verified.stdout
    shown = org.run("audit", "show", "--json").stdout
    events = json.loads(shown)
    for secret in (PIN, REQUESTER_PASSWORD, P12_PASSWORD, *map(_phrase, OFFICERS)):
        assert secret not in shown

    inits = [e for e in events if e["action"] == "escrow.init"]
    assert inits and all(e["details"]["mode"] == "hsm" for e in inits)
    assert inits[0]["details"]["officers"] == list(OFFICERS)
    assert inits[0]["details"]["threshold"] == 2 and inits[0]["outcome"] == "ok"

    mine = [e for e in events if e["subject"] == recovery.request_id]
    steps = [(e["action"], e["outcome"]) for e in mine]
    assert steps == [
        ("escrow.request", "ok"),
        ("escrow.approve", "ok"),
        ("escrow.deliver", "refused"),
        ("escrow.approve", "ok"),
        ("escrow.deliver", "ok"),
        ("escrow.deliver", "refused"),
        ("escrow.approve", "refused"),
    ], steps
    # who: the requester, then each approval under the officer whose key signed it
    assert [e["actor"] for e in mine if e["outcome"] == "ok"] == [
        "helpdesk",
        "ann",
        "bo",
        "helpdesk",
    ]
    assert [e["details"]["officer"] for e in mine[1:4:2]] == ["ann", "bo"]
    delivered = next(e for e in mine if e["action"] == "escrow.deliver" and e["outcome"] == "ok")
    assert delivered["details"]["keys"] == [i.serial for i in org.encryption]
    assert "1 of the 2 approvals" in mine[2]["details"]["error"]
    assert "delivered already" in mine[5]["details"]["error"]
    (imported,) = [e for e in events if e["action"] == "escrow.import"]
    assert (
        imported["subject"] == OLD_EMAIL and imported["details"]["serial"] == org.imported[0].serial
    )
    archived = [
        e["details"]["serial"]
        for e in events
        if e["action"] in ("certificate.issue", "certificate.renew") and e["details"]["archived"]
    ]
    assert archived == [i.serial for i in org.encryption]
    # the refusals of the other tests are there too, when they ran
    refused = [e for e in events if e["action"] == "escrow.approve" and e["outcome"] == "refused"]
    assert refused
