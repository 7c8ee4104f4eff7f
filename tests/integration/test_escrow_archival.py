"""Archival at issuance: with an escrow set, every server-generated encryption key is archived
in the issuance transaction and can be recovered by a quorum of share holders; signing keys are
never archived, and the database holds no key in the clear."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mailseal.config import Settings
from mailseal.errors import EscrowError
from mailseal.escrow.protect import KdfCost, open_share
from mailseal.escrow.threshold import SealedRecord, open_record, partial_decrypt
from mailseal.lifecycle.authority import Secrets, init_organisation, record_id
from mailseal.lifecycle.escrow import escrow_from_row
from mailseal.store import EscrowRecord, repo

FAST = KdfCost(1, 8 << 20)
SECRETS = Secrets(passphrase=b"escrow test passphrase")


def test_encryption_keys_are_archived_and_recoverable(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h", organization="Escrow Ltd", domains=("example.org",))
    authority = init_organisation(settings, SECRETS, key_type="p256")
    try:
        before = authority.issue(email="early@example.org")  # no escrow yet: nothing archived
        officers = [("ann", b"ann's passphrase"), ("bo", b"bo's passphrase"), ("cy", b"cy's pass!")]
        files = dict(authority.init_escrow(2, officers, cost=FAST))
        first = authority.issue(email="eve@example.org")
        second = authority.renew(email="eve@example.org", revoke_old="superseded")
        history = authority.escrow_history("eve@example.org")
        encryption = [i for i in first + second if i.usage == "encryption"]
        assert [h["serial"] for h in history] == [i.serial for i in encryption]
        assert authority.escrow_history("early@example.org") == []
        assert not any(
            i.usage == "signing" and i.serial in {h["serial"] for h in history}
            for i in first + second
        )
        del before

        with authority.db.session(readonly=True) as s:
            escrow = escrow_from_row(repo.active_escrow_set(s))
            records = repo.escrow_history(s, "eve@example.org")
            sealed = [
                (r.certificate.serial, SealedRecord(r.ephemeral, r.masked, r.nonce, r.ciphertext))
                for r in records
            ]
            ca_id = records[0].certificate.ca_id
        shares = [open_share(files[n], p, escrow) for n, p in officers[1:]]
        for (serial, record), issued in zip(sealed, encryption, strict=True):
            rid = record_id(ca_id, int(serial, 16))
            partials = [partial_decrypt(escrow, sh, record) for sh in shares]
            der = open_record(escrow, rid, record, partials)
            key = serialization.load_der_private_key(der, None)
            assert key.public_key() == issued.certificate.public_key()
            with pytest.raises(EscrowError):
                open_record(escrow, rid, record, partials[:1])

        # the database holds no archived key in the clear
        keys = [
            i.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for i in encryption
        ]
        raw = b"".join(p.read_bytes() for p in settings.home.rglob("*") if p.is_file())
        for k in keys:
            assert k not in raw
        for i in encryption:  # nor the private scalar itself, in any encoding stored raw
            assert i.key.private_numbers().private_value.to_bytes(32, "big") not in raw
        with sqlite3.connect(settings.home / "mailseal.db") as conn:
            count = conn.execute("SELECT count(*) FROM escrow_records").fetchone()[0]
        assert count == len(encryption)
        with authority.db.session(readonly=True) as s:
            assert repo.count_rows(s, EscrowRecord) == len(encryption)
    finally:
        authority.close()


def test_escrow_cli(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MAILSEAL_HOME": str(tmp_path / "home"),
        "CA_PASS": "escrow cli passphrase",
        "MAILSEAL_SHARE_PASSPHRASE_ANN": "ann passphrase",
        "MAILSEAL_SHARE_PASSPHRASE_BO": "bo passphrase",
    }

    def ms(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailseal", *(str(a) for a in args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert (
        ms(
            "init",
            "--org",
            "Cli Ltd",
            "--domain",
            "example.org",
            "--key-type",
            "p256",
            "--passphrase-env",
            "CA_PASS",
        ).returncode
        == 0
    )
    r = ms(
        "escrow",
        "init",
        "--threshold",
        "3",
        "--officer",
        "ann",
        "--officer",
        "bo",
        "--out",
        tmp_path / "shares",
    )
    assert r.returncode == 2 and "needs at least 3 officers" in r.stderr
    r = ms(
        "escrow",
        "init",
        "--threshold",
        "2",
        "--officer",
        "ann",
        "--officer",
        "bo",
        "--out",
        tmp_path / "shares",
    )
    assert r.returncode == 0, r.stderr
    for name in ("ann", "bo"):
        share = tmp_path / "shares" / f"share-{name}.json"
        assert share.stat().st_mode & 0o777 == 0o600
        assert b"passphrase" not in share.read_bytes()
    assert (
        ms(
            "issue",
            "--email",
            "z@example.org",
            "--out",
            tmp_path / "o",
            "--p12-password-env",
            "CA_PASS",
        ).returncode
        == 0
    )
    r = ms("escrow", "history", "--email", "z@example.org")
    assert r.returncode == 0 and r.stdout.count("valid") == 1, r.stdout
