"""After two renewals, the PKCS#12 file a key-escrow recovery delivers opens mail encrypted to
each of the person's three encryption certificates — with mailseal, NSS, ``openssl cms
-decrypt`` and with gpgsm (2.2 imports one legacy-encrypted key per file: ``mailseal pkcs12
split --legacy`` makes those)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from mailseal.config import Settings
from mailseal.escrow.protect import KdfCost
from mailseal.lifecycle import escrow as esc
from mailseal.lifecycle.authority import Secrets, init_organisation

pytestmark = pytest.mark.interop

FAST = KdfCost(1, 8 << 20)
PASSWORD = "recovered keys password"
OFFICERS = [("ann", b"ann share passphrase"), ("bo", b"bo share passphrase")]
BODY = "Content-Type: text/plain\r\n\r\nold mail number {n}\r\n"


def _run(cmd: list[str | Path], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, timeout=120, check=False,
                          **kw)  # fmt: skip


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory, require_peer: Any) -> dict[str, Any]:
    """Eve's three encryption certificates (issued, renewed, renewed), a message encrypted to
    each by OpenSSL, and the recovery PKCS#12."""
    require_peer("openssl")
    tmp = tmp_path_factory.mktemp("recovery")
    settings = Settings(home=tmp / "home", organization="Peers Ltd", domains=("example.org",))
    authority = init_organisation(settings, Secrets(passphrase=b"peers ca pass"), key_type="p256")
    try:
        files = dict(authority.init_escrow(2, OFFICERS, cost=FAST))
        issued = authority.issue(email="eve@example.org", key_type="rsa2048")
        issued += authority.renew(email="eve@example.org", revoke_old="superseded")
        issued += authority.renew(email="eve@example.org", revoke_old="superseded")
        certs = [i.certificate for i in issued if i.usage == "encryption"]
        assert len(certs) == 3
        messages = []
        for n, cert in enumerate(certs):
            pem = tmp / f"enc{n}.pem"
            pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            src = tmp / f"body{n}.txt"
            src.write_bytes(BODY.format(n=n).encode())
            for form in ("DER", "SMIME"):
                out = tmp / f"msg{n}.{form.lower()}"
                proc = _run(["openssl", "cms", "-encrypt", "-aes256", "-binary", "-in", src,
                             "-outform", form, "-out", out, pem])  # fmt: skip
                assert proc.returncode == 0, proc.stderr
            messages.append((n, tmp / f"msg{n}.der", tmp / f"msg{n}.smime"))
        view = esc.request_recovery(
            authority,
            email="eve@example.org",
            serials=None,
            reason="interop",
            password=PASSWORD.encode(),
            requester="helpdesk",
            cost=FAST,
        )
        for name, phrase in OFFICERS:
            esc.approve(authority, view.request_id, files[name], passphrase=phrase)
        p12 = tmp / "eve.p12"
        esc.deliver(authority, view.request_id, PASSWORD.encode(), p12.write_bytes)
    finally:
        authority.close()
    return {"tmp": tmp, "p12": p12, "messages": messages, "certs": certs}


def test_mailseal_decrypts_every_old_message(recovered: dict[str, Any]) -> None:
    env = {**os.environ, "P12PW": PASSWORD}
    for n, _der, smime in recovered["messages"]:
        out = recovered["tmp"] / f"ms{n}.out"
        proc = _run([sys.executable, "-m", "mailseal", "decrypt", "-i", smime, "-o", out,
                     "--p12", recovered["p12"], "--password-env", "P12PW"], env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        assert f"old mail number {n}".encode() in out.read_bytes()


def test_openssl_decrypts_every_old_message(recovered: dict[str, Any]) -> None:
    tmp = recovered["tmp"]
    env = {**os.environ, "P12PW": PASSWORD}
    proc = _run(["openssl", "pkcs12", "-in", recovered["p12"], "-nocerts", "-nodes",
                 "-passin", "env:P12PW"], env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    keys = [
        b"-----BEGIN PRIVATE KEY-----" + part.split(b"-----END PRIVATE KEY-----")[0]
        + b"-----END PRIVATE KEY-----\n"
        for part in proc.stdout.split(b"-----BEGIN PRIVATE KEY-----")[1:]
    ]  # fmt: skip
    assert len(keys) == 3
    used = set()
    for n, der, _smime in recovered["messages"]:
        opened = None
        for k, key in enumerate(keys):
            kf = tmp / f"k{k}.pem"
            kf.write_bytes(key)
            out = tmp / f"os{n}.out"
            r = _run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", der,
                      "-recip", tmp / f"enc{n}.pem", "-inkey", kf, "-out", out])  # fmt: skip
            if r.returncode == 0:
                opened = k
                assert f"old mail number {n}".encode() in out.read_bytes()
                break
        assert opened is not None, f"no recovered key opens message {n}"
        used.add(opened)
    assert used == {0, 1, 2}


def test_gpgsm_decrypts_every_old_message(recovered: dict[str, Any], require_peer: Any) -> None:
    bins = require_peer("gpgsm")
    tmp = recovered["tmp"]
    env = {**os.environ, "P12PW": PASSWORD}
    split = tmp / "split"
    proc = _run([sys.executable, "-m", "mailseal", "pkcs12", "split", recovered["p12"],
                 "--out", split, "--legacy", "--password-env", "P12PW"], env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    home = tmp / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\n")
    genv = {**os.environ, "GNUPGHOME": str(home)}
    gpgsm = bins["gpgsm"]
    try:
        for f in sorted(split.glob("*.p12")):
            r = _run([gpgsm, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
                      "--import", f], env=genv, input=PASSWORD.encode() + b"\n")  # fmt: skip
            assert r.returncode == 0, r.stderr.decode()
        listed = _run([gpgsm, "--with-colons", "--list-secret-keys"], env=genv).stdout.decode()
        for cert in recovered["certs"]:
            assert cert.fingerprint(hashes.SHA1()).hex().upper() in listed
        for n, der, _smime in recovered["messages"]:
            out = tmp / f"gs{n}.out"
            r = _run([gpgsm, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
                      "--status-fd", "1", "--output", out, "--decrypt", der], env=genv,
                     input=PASSWORD.encode() + b"\n")  # fmt: skip
            assert b"DECRYPTION_OKAY" in r.stdout, r.stderr.decode()
            assert f"old mail number {n}".encode() in out.read_bytes()
    finally:
        _run([bins.get("gpgconf", "gpgconf"), "--kill", "all"], env=genv)


def test_nss_imports_every_key_and_decrypts_every_old_message(
    recovered: dict[str, Any], require_peer: Any
) -> None:
    bins = require_peer("nss")
    tmp = recovered["tmp"]
    db = tmp / "nssdb"
    db.mkdir()
    assert _run([bins["certutil"], "-N", "-d", f"sql:{db}", "--empty-password"]).returncode == 0
    r = _run([bins["pk12util"], "-i", recovered["p12"], "-d", f"sql:{db}", "-W", PASSWORD])
    assert r.returncode == 0, r.stdout + r.stderr
    listed = _run([bins["certutil"], "-K", "-d", f"sql:{db}"]).stdout.decode()
    for cert in recovered["certs"]:
        assert format(cert.serial_number, "x") in listed
    for n, der, _smime in recovered["messages"]:
        out = tmp / f"nss{n}.out"
        r = _run([bins["cmsutil"], "-D", "-d", f"sql:{db}", "-i", der, "-o", out])
        assert r.returncode == 0, r.stderr.decode()
        assert f"old mail number {n}".encode() in out.read_bytes()
