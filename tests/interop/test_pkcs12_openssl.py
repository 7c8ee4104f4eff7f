"""PKCS#12 files with several keys (mailseal.keys.pkcs12) against OpenSSL 3 and gpgsm 2.2.

OpenSSL must read every key of a mailseal-written file and show the PBES2 / AES-256-CBC /
PBKDF2-HMAC-SHA256 parameters and the SHA-256 MAC; mailseal must read what ``openssl pkcs12
-export`` writes (default, ``-legacy``, 3DES, unencrypted, without MAC).

gpgsm 2.2 is a limited PKCS#12 reader. What it does, as these tests found on 2.2.40:

* a mailseal file (PBES2 with AES-256-CBC and hmacWithSHA256) is refused outright
  ("encryptedData error at pkcs5PBES2-params", exit 2): nothing is imported, not even the
  certificates. (Of AES-128/256-CBC with hmacWithSHA1/SHA256, 2.2.40 parses only
  AES-128-CBC with hmacWithSHA1.)
* a multi-key file in an encoding it reads (pbeWithSHAAnd3-KeyTripleDES-CBC, SHA-1 MAC):
  with every key bag in one SafeContents (mailseal's layout) it exits 0, imports every
  certificate but only the first key ("secret keys read: 1") and drops the others without a
  word; with the keys in separate ContentInfos it stops at the second key ("a key has already
  been received", exit 2) and imports no key at all.
* one legacy file per key imports every key;
* independent of the number of keys, gpgsm 2.2's PKCS#12 KDF derives a wrong 3DES key for
  about one salt in 128 (see ``gpgsm22_derives_a_wrong_key``) and then reports "possibly bad
  passphrase given" for a sound file: a legacy file (two such derivations) fails to import
  about once in 64 exports. The files made here avoid those salts so the tests are stable.

The first two are tried anyway and marked xfail with what gpgsm did, so they start passing
when a newer gpgsm can; the third is the recipe for people who use gpgsm.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as a_cms
from asn1crypto import core as a_core
from asn1crypto import pkcs12 as a_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12 as c_pkcs12

from mailseal.keys.pkcs12 import Pkcs12Entry, _pkcs12_kdf, read_pkcs12, write_pkcs12
from mailseal.pki.testpki import Issued, TestPKI

pytestmark = pytest.mark.interop

PW = "Recovery pass – ünïcode"
PW_BYTES = PW.encode()
PASS_VAR = "MAILSEAL_TEST_P12_PASS"
TIMEOUT = 120


def run(
    args: Sequence[str | Path], *, env: dict[str, str] | None = None, stdin: bytes = b""
) -> Any:
    return subprocess.run(
        [str(a) for a in args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def describe(proc: Any) -> str:
    return (
        f"\n$ {' '.join(map(str, proc.args))}\nexit code {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-3000:].decode('utf-8', 'replace')}\n"
        f"--- stderr ---\n{proc.stderr[-3000:].decode('utf-8', 'replace')}"
    )


def pkcs8(key: Any) -> bytes:
    der: bytes = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return der


def spki(obj: Any) -> bytes:
    der: bytes = obj.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


@pytest.fixture(scope="module")
def history(pki: TestPKI) -> list[Issued]:
    """Three historical encryption keys of one person: RSA-2048, P-256, Ed25519."""
    return [
        pki.user("hist@example.org", usage="encryption"),
        pki.user("hist@example.org", key_type="p256", usage="encryption"),
        pki.user("hist@example.org", key_type="ed25519", usage="signing"),
    ]


@pytest.fixture(scope="module")
def ours(history: list[Issued], pki: TestPKI) -> bytes:
    """A mailseal-written 3-key file at the default iteration count (600,000)."""
    return write_pkcs12(
        [Pkcs12Entry(i.key, i.cert, f"key {n}") for n, i in enumerate(history, 1)],
        PW_BYTES,
        ca_certificates=[pki.root.cert, *pki.chain],
    )


# ---- OpenSSL reads mailseal ------------------------------------------------------------------


def test_openssl_reads_every_key_and_certificate(
    openssl: Any, ours: bytes, history: list[Issued], pki: TestPKI, tmp_path: Path
) -> None:
    src = tmp_path / "recovered.p12"
    src.write_bytes(ours)
    env = {**os.environ, PASS_VAR: PW}
    proc = run(
        [openssl.bins["openssl"], "pkcs12", "-in", src, "-passin", f"env:{PASS_VAR}", "-nodes"],
        env=env,
    )
    assert proc.returncode == 0, describe(proc)
    pem = proc.stdout
    keys = [
        serialization.load_pem_private_key(m.group(0), None)
        for m in re.finditer(rb"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----", pem, re.S)
    ]
    certs = x509.load_pem_x509_certificates(pem)
    assert len(keys) == 3, describe(proc)
    assert {c.fingerprint(hashes.SHA256()) for c in certs} == {
        c.fingerprint(hashes.SHA256())
        for c in [*(i.cert for i in history), pki.root.cert, *pki.chain]
    }
    # each key OpenSSL recovered belongs to one of the three certificates, and all three are hit
    want = {spki(i.cert): i for i in history}
    got = {spki(k) for k in keys}
    assert got == set(want), "a key OpenSSL printed does not match any of the certificates"
    for k in keys:
        assert pkcs8(k) == pkcs8(want[spki(k)].key)
    assert pem.count(b"friendlyName: key") == 6  # on each key bag and its certificate bag


def test_openssl_info_shows_pbes2_aes256_pbkdf2_and_sha256_mac(
    openssl: Any, history: list[Issued], tmp_path: Path
) -> None:
    src = tmp_path / "info.p12"
    src.write_bytes(
        write_pkcs12([Pkcs12Entry(i.key, i.cert) for i in history], PW_BYTES, iterations=4096)
    )
    env = {**os.environ, PASS_VAR: PW}
    args = ["pkcs12", "-in", src, "-info", "-noout", "-passin", f"env:{PASS_VAR}"]
    proc = run([openssl.bins["openssl"], *args], env=env)
    assert proc.returncode == 0, describe(proc)
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert "MAC: sha256, Iteration 4096" in text, text
    assert "MAC length: 32, salt length: 16" in text, text
    scheme = "PBES2, PBKDF2, AES-256-CBC, Iteration 4096, PRF hmacWithSHA256"
    assert f"PKCS7 Encrypted data: {scheme}" in text, text
    assert text.count(f"Shrouded Keybag: {scheme}") == 3, text
    assert text.count("Certificate bag") == 3, text


def test_openssl_refuses_a_wrong_password(openssl: Any, ours: bytes, tmp_path: Path) -> None:
    src = tmp_path / "wrong.p12"
    src.write_bytes(ours)
    proc = run([openssl.bins["openssl"], "pkcs12", "-in", src, "-noout", "-passin", "pass:nope"])
    assert proc.returncode != 0
    assert b"mac verify" in proc.stderr.lower(), describe(proc)


# ---- mailseal reads OpenSSL -------------------------------------------------------------------

EXPORTS = {
    "default": [],
    "legacy": ["-legacy"],
    "3des-sha1mac": ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
    "aes128-sha512mac": ["-keypbe", "AES-128-CBC", "-certpbe", "AES-128-CBC", "-macalg", "sha512"],
    "unencrypted": ["-keypbe", "NONE", "-certpbe", "NONE"],
    "nomac": ["-nomac"],
}


@pytest.mark.parametrize("variant", list(EXPORTS))
@pytest.mark.parametrize("which", [0, 1, 2], ids=["rsa", "p256", "ed25519"])
def test_mailseal_reads_openssl_export(
    openssl: Any,
    history: list[Issued],
    pki: TestPKI,
    tmp_path: Path,
    variant: str,
    which: int,
) -> None:
    issued = history[which]
    (tmp_path / "cert.pem").write_bytes(issued.cert_pem)
    (tmp_path / "key.pem").write_bytes(issued.key_pem)
    (tmp_path / "chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [*pki.chain, pki.root.cert])
    )
    out = tmp_path / "openssl.p12"
    env = {**os.environ, PASS_VAR: PW}
    args: list[str | Path] = [
        openssl.bins["openssl"], "pkcs12", "-export", "-in", tmp_path / "cert.pem",
        "-inkey", tmp_path / "key.pem", "-certfile", tmp_path / "chain.pem",
        "-name", "from openssl", "-passout", f"env:{PASS_VAR}", "-out", out,
        *EXPORTS[variant],
    ]  # fmt: skip
    proc = run(args, env=env)
    if proc.returncode != 0 and variant == "legacy":
        pytest.skip(
            "this openssl cannot write -legacy files (no legacy provider?)" + describe(proc)
        )
    assert proc.returncode == 0, describe(proc)
    got = read_pkcs12(out.read_bytes(), PW_BYTES)
    assert got.mac_verified is (variant != "nomac")
    assert len(got.entries) == 1
    entry = got.entries[0]
    assert entry.certificate == issued.cert
    assert spki(entry.key) == spki(issued.cert)
    assert entry.friendly_name == "from openssl"
    assert {c.fingerprint(hashes.SHA256()) for c in got.extra_certificates} == {
        c.fingerprint(hashes.SHA256()) for c in [*pki.chain, pki.root.cert]
    }


def test_cryptography_loads_our_multi_key_file(ours: bytes, history: list[Issued]) -> None:
    """cryptography (OpenSSL-backed) loads our multi-key file too: the first key and its
    certificate, the other certificates as additional ones."""
    p = c_pkcs12.load_pkcs12(ours, PW_BYTES)
    assert p.key is not None and p.cert is not None
    assert spki(p.key) == spki(history[0].cert)
    assert len(p.additional_certs) == 4


# ---- gpgsm --------------------------------------------------------------------------------------


class GpgsmHome:
    """A throwaway GNUPGHOME with loopback pinentry (as /work/shared/interop/gpgsm.sh)."""

    def __init__(self, root: Path, bins: dict[str, str]) -> None:
        self.home = root / "gnupg"
        self.home.mkdir(mode=0o700)
        (self.home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
        (self.home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\n")
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        self.bins = bins
        self.root = root

    def import_p12(self, data: bytes, password: bytes, name: str) -> Any:
        path = self.root / name
        path.write_bytes(data)
        return run(
            [self.bins["gpgsm"], "--batch", "--pinentry-mode", "loopback", "--passphrase-fd",
             "0", "--status-fd", "1", "--import", path],
            env=self.env, stdin=password + b"\n",
        )  # fmt: skip

    def secret_fingerprints(self) -> set[str]:
        """SHA-1 fingerprints of the certificates gpgsm holds a private key for."""
        proc = run([self.bins["gpgsm"], "--with-colons", "--list-secret-keys"], env=self.env)
        found: set[str] = set()
        in_secret = False
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if fields[0] in ("crs", "crt"):
                in_secret = fields[0] == "crs"
            elif fields[0] == "fpr" and in_secret and len(fields) > 9:
                found.add(fields[9].upper())
        return found

    def version(self) -> str:
        proc = run([self.bins["gpgsm"], "--version"])
        return proc.stdout.decode().splitlines()[0] if proc.returncode == 0 else "gpgsm"

    def close(self) -> None:
        run([self.bins["gpgconf"], "--kill", "all"], env=self.env)


@pytest.fixture
def gpgsm_home(require_peer: Any, tmp_path: Path) -> Iterator[GpgsmHome]:
    home = GpgsmHome(tmp_path, require_peer("gpgsm"))
    try:
        yield home
    finally:
        home.close()


def sha1_fp(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # gpgsm's certificate fingerprint


def gpgsm_said(proc: Any) -> str:
    lines = proc.stderr.decode("utf-8", "replace").splitlines()
    words = ("error", "secret keys", "already")
    errs = [ln for ln in lines if any(w in ln.lower() for w in words)]
    return " / ".join(errs[:4] or lines[-2:] or [f"exit {proc.returncode}"])


def gpgsm22_derives_a_wrong_key(salt: bytes, password: bytes, iterations: int) -> bool:
    """Whether gpgsm 2.2's PKCS#12 KDF goes wrong for this 3DES key derivation.

    The 24-byte key takes two SHA-1 chains; between them each 64-byte block I_j of salt and
    password becomes I_j + B + 1 (RFC 7292 B.2 step 6). gpgsm 2.2 prints that number back
    without its leading zero bytes, so when the top byte is zero (about one salt in 128) it
    derives a wrong key and reports "possibly bad passphrase given" for a sound file.
    """
    v = 64
    bmp = password.decode().encode("utf-16-be") + b"\x00\x00"

    def fill(data: bytes) -> bytes:
        n = v * ((len(data) + v - 1) // v)
        return (data * (n // len(data) + 1))[:n]

    i_bytes = fill(salt) + fill(bmp)
    a = hashlib.sha1(b"\x01" * v + i_bytes).digest()
    for _ in range(iterations - 1):
        a = hashlib.sha1(a).digest()
    b = int.from_bytes((a * 4)[:v], "big") + 1
    blocks = (i_bytes[j : j + v] for j in range(0, len(i_bytes), v))
    return any((int.from_bytes(block, "big") + b) % (1 << 512) < (1 << 504) for block in blocks)


def pbe_params(data: bytes) -> list[tuple[bytes, int]]:
    """(salt, iterations) of every PKCS#12 PBE in a cryptography-made legacy file."""
    out = []
    for ci in a_pkcs12.Pfx.load(data).authenticated_safe:
        if ci["content_type"].native == "encrypted_data":
            algs = [ci["content"]["encrypted_content_info"]["content_encryption_algorithm"]]
        else:
            safe = a_pkcs12.SafeContents.load(ci["content"].native)
            algs = [bag["bag_value"]["encryption_algorithm"] for bag in safe]
        out += [
            (a["parameters"]["salt"].native, a["parameters"]["iterations"].native) for a in algs
        ]
    return out


def legacy_single(issued: Issued, pki: TestPKI, password: bytes) -> bytes:
    """One key per file, 3DES + SHA-1 MAC: what gpgsm 2.2 reads (made again while a salt
    would trip gpgsm 2.2's KDF, so that the tests show gpgsm's behaviour, not that bug)."""
    for _ in range(20):
        data = issued.pkcs12(password, legacy=True, chain=pki.chain)
        if not any(gpgsm22_derives_a_wrong_key(s, password, n) for s, n in pbe_params(data)):
            return data
    raise AssertionError("no gpgsm-safe salt in 20 tries")


def legacy_multi(files: Sequence[bytes], password: bytes, *, keys_together: bool) -> bytes:
    """Several single-key legacy files (cryptography-made: an encryptedData with the
    certificates, a data SafeContents with the key) as one file under a fresh SHA-1 MAC: a
    multi-key file in the encoding gpgsm 2.2 reads.

    ``keys_together``: every key bag in one SafeContents after all the certificates, as
    mailseal lays out its files; otherwise the ContentInfos of each file one after another.
    """
    infos = [ci for f in files for ci in a_pkcs12.Pfx.load(f).authenticated_safe]
    if keys_together:
        certs = [ci for ci in infos if ci["content_type"].native == "encrypted_data"]
        bags = [
            bag
            for ci in infos
            if ci["content_type"].native == "data"
            for bag in a_pkcs12.SafeContents.load(ci["content"].native)
        ]
        keys = {"content_type": "data", "content": a_pkcs12.SafeContents(bags).dump()}
        infos = [*certs, a_cms.ContentInfo(keys)]
    auth_safe = a_pkcs12.AuthenticatedSafe(infos).dump()
    salt = os.urandom(8)
    bmp = password.decode().encode("utf-16-be") + b"\x00\x00"
    mac_key = _pkcs12_kdf("sha1", bmp, salt, 3, 2048, 20)
    mac = hmac.new(mac_key, auth_safe, hashlib.sha1).digest()
    pfx: bytes = a_pkcs12.Pfx(
        {
            "version": "v3",
            "auth_safe": {"content_type": "data", "content": auth_safe},
            "mac_data": {
                "mac": {
                    "digest_algorithm": {"algorithm": "sha1", "parameters": a_core.Null()},
                    "digest": mac,
                },
                "mac_salt": salt,
                "iterations": 2048,
            },
        }
    ).dump()
    return pfx


@pytest.fixture(scope="module")
def rsa_history(pki: TestPKI) -> list[Issued]:
    """Three historical RSA encryption keys (the key type every gpgsm imports)."""
    return [pki.user(f"gpgsm-hist-{n}@example.org", usage="encryption") for n in range(3)]


def test_gpgsm_imports_every_key_of_a_mailseal_file(
    gpgsm_home: GpgsmHome, rsa_history: list[Issued], pki: TestPKI
) -> None:
    data = write_pkcs12(
        [Pkcs12Entry(i.key, i.cert) for i in rsa_history],
        b"test",
        ca_certificates=[pki.root.cert, *pki.chain],
    )
    proc = gpgsm_home.import_p12(data, b"test", "recovered.p12")
    have = gpgsm_home.secret_fingerprints()
    want = {sha1_fp(i.cert) for i in rsa_history}
    if have != want:
        pytest.xfail(
            f"{gpgsm_home.version()} imported {len(have & want)} of 3 keys from a mailseal "
            f"PKCS#12 file (exit {proc.returncode}): {gpgsm_said(proc)}"
        )


@pytest.mark.parametrize("keys_together", [True, False], ids=["one-safecontents", "per-key"])
def test_gpgsm_imports_every_key_of_a_legacy_multi_key_file(
    gpgsm_home: GpgsmHome, rsa_history: list[Issued], pki: TestPKI, keys_together: bool
) -> None:
    password = b"test"
    singles = [legacy_single(i, pki, password) for i in rsa_history]
    data = legacy_multi(singles, password, keys_together=keys_together)
    # the file is a sound 3-key file: mailseal reads all three keys from it
    assert len(read_pkcs12(data, password).entries) == 3
    proc = gpgsm_home.import_p12(data, password, "multi-legacy.p12")
    have = gpgsm_home.secret_fingerprints()
    if len(have) == 3:
        return
    if keys_together:
        # gpgsm 2.2.40: exit 0, "secret keys read: 1", the first key bag only
        assert have <= {sha1_fp(rsa_history[0].cert)}, "gpgsm took a key other than the first"
    pytest.xfail(
        f"{gpgsm_home.version()} imported {len(have)} of 3 private keys from a multi-key "
        f"PKCS#12 file (exit {proc.returncode}): {gpgsm_said(proc)}"
    )


def test_gpgsm_imports_every_key_from_one_legacy_file_per_key(
    gpgsm_home: GpgsmHome, rsa_history: list[Issued], pki: TestPKI
) -> None:
    """The recipe for gpgsm users: split a recovery file into one legacy file per key."""
    recovered = write_pkcs12(
        [Pkcs12Entry(i.key, i.cert) for i in rsa_history], PW_BYTES, iterations=2048
    )
    password = b"per-key"
    entries = read_pkcs12(recovered, PW_BYTES).entries
    for n, entry in enumerate(entries):
        data = legacy_single(Issued.of(entry.certificate, entry.key), pki, password)
        proc = gpgsm_home.import_p12(data, password, f"key{n}.p12")
        assert proc.returncode == 0, describe(proc)
    assert gpgsm_home.secret_fingerprints() == {sha1_fp(i.cert) for i in rsa_history}
