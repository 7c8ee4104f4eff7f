"""The internal CA end to end: ``mailseal init / issue / revoke / crl / certs / serve`` as a user
runs them (subprocesses), checked by the real peers (openssl verify/crl/ocsp/cms, NSS certutil),
on SQLite and PostgreSQL, with file keys and with the CA keys in SoftHSM2."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailseal.config import Settings
from mailseal.lifecycle.authority import Authority, Secrets, init_organisation

from ._softhsm import private_softhsm

PASSPHRASE = "integration-test-passphrase"
MAILSEAL = [sys.executable, "-m", "mailseal"]
TIMEOUT = 120


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        msg = f"{binary} is not installed"
        if os.environ.get("MAILSEAL_REQUIRE_PEERS") == "1":
            pytest.fail(msg + " and MAILSEAL_REQUIRE_PEERS=1", pytrace=False)
        pytest.skip(msg)
    return path


@dataclass
class Org:
    home: Path
    env: dict[str, str]
    out: Path
    log: list[str] = field(default_factory=list)

    def run(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*MAILSEAL, *(str(a) for a in args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def cert(self, name: str) -> Path:
        return self.home / "ca" / f"{name}.crt"

    def certs_json(self) -> list[dict[str, str]]:
        return json.loads(self.run("certs", "--json").stdout)  # type: ignore[no-any-return]

    def db_rows(self) -> int:
        return len(self.certs_json())


def _org(tmp: Path, *extra: str, env_extra: dict[str, str] | None = None) -> Org:
    env = {**os.environ, "MAILSEAL_HOME": str(tmp / "home"), "CA_PASS": PASSPHRASE}
    env.update(env_extra or {})
    org = Org(tmp / "home", env, tmp / "out")
    org.run(
        "init",
        "--org",
        "Integration Ltd",
        "--domain",
        "example.org",
        "--passphrase-env",
        "CA_PASS",
        *extra,
    )
    return org


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    return _org(tmp_path_factory.mktemp("ca"))


# -- init and issue -------------------------------------------------------------------------------
def test_init_lays_out_a_private_data_directory(org: Org) -> None:
    assert org.home.stat().st_mode & 0o777 == 0o700
    assert (org.home / "mailseal.db").stat().st_mode & 0o777 == 0o600
    for key in (org.home / "keys").iterdir():
        assert key.stat().st_mode & 0o777 == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    config = (org.home / "mailseal.toml").read_text()
    assert PASSPHRASE not in config
    again = org.run(
        "init", "--org", "X", "--domain", "example.org", "--passphrase-env", "CA_PASS", ok=False
    )
    assert again.returncode == 2 and "initialised already" in again.stderr


def test_issued_pair_is_accepted_by_openssl_and_nss(org: Org, tmp_path: Path) -> None:
    openssl = _need("openssl")
    out = tmp_path / "alice"
    r = org.run(
        "issue",
        "--email",
        "alice@example.org",
        "--key-type",
        "rsa2048",
        "--out",
        out,
        "--passphrase-env",
        "CA_PASS",
        "--p12-password-env",
        "CA_PASS",
    )
    assert "signing" in r.stdout and "encryption" in r.stdout
    assert "shown once" not in r.stdout  # the password came from the environment
    chain = ["-CAfile", org.cert("root"), "-untrusted", org.cert("issuing")]
    for purpose, usage in (("smimesign", "signing"), ("smimeencrypt", "encryption")):
        proc = subprocess.run(
            [openssl, "verify", "-purpose", purpose, *chain, out / f"alice-{usage}.crt"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    p12 = (out / "alice-encryption.p12").read_bytes()
    from cryptography.hazmat.primitives.serialization import pkcs12

    loaded = pkcs12.load_pkcs12(p12, PASSPHRASE.encode())
    assert loaded.key is not None and loaded.cert is not None
    assert (out / "alice-encryption.p12").stat().st_mode & 0o777 == 0o600

    certutil = _need("certutil")
    nssdb = tmp_path / "nss"
    nssdb.mkdir()
    db = ["-d", f"sql:{nssdb}"]

    def cu(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [certutil, *db, *(str(a) for a in args)], capture_output=True, text=True, check=False
        )

    assert cu("-N", "--empty-password").returncode == 0
    assert cu("-A", "-n", "root", "-t", "C,C,C", "-i", org.cert("root")).returncode == 0
    assert cu("-A", "-n", "issuing", "-t", ",,", "-i", org.cert("issuing")).returncode == 0
    for usage, flag in (("signing", "S"), ("encryption", "R")):
        pem = (out / f"alice-{usage}.crt").read_bytes().split(b"-----END CERTIFICATE-----")[0]
        leaf = tmp_path / f"{usage}.pem"
        leaf.write_bytes(pem + b"-----END CERTIFICATE-----\n")
        assert cu("-A", "-n", usage, "-t", ",,", "-i", leaf).returncode == 0
        check = cu("-V", "-n", usage, "-u", flag)
        assert check.returncode == 0 and "certificate is valid" in check.stdout, check


def test_issued_certificates_sign_and_encrypt_mail_with_openssl(org: Org, tmp_path: Path) -> None:
    """Mail signed with an issued signing certificate verifies in openssl cms; mail encrypted
    to an issued (EC) encryption certificate opens with openssl cms and the PKCS#12 key."""
    openssl = _need("openssl")
    out = tmp_path / "erin"
    org.run(
        "issue",
        "--email",
        "erin@example.org",
        "--out",
        out,
        "--passphrase-env",
        "CA_PASS",
        "--p12-password-env",
        "CA_PASS",
    )
    from cryptography.hazmat.primitives.serialization import pkcs12

    def unpack(usage: str) -> tuple[Path, Path]:
        p = pkcs12.load_pkcs12((out / f"erin-{usage}.p12").read_bytes(), PASSPHRASE.encode())
        assert p.key is not None and p.cert is not None
        cert = tmp_path / f"{usage}.crt"
        key = tmp_path / f"{usage}.key"
        cert.write_bytes(p.cert.certificate.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            p.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert, key

    scert, skey = unpack("signing")
    ecert, ekey = unpack("encryption")
    mail = tmp_path / "mail.eml"
    mail.write_bytes(
        b"From: erin@example.org\r\nTo: x@example.org\r\nSubject: hi\r\n"
        b"Content-Type: text/plain\r\n\r\nissued by mailseal\r\n"
    )
    signed = tmp_path / "signed.eml"
    inter = tmp_path / "inter.pem"
    inter.write_bytes(org.cert("issuing").read_bytes())
    org.run("sign", "-i", mail, "-o", signed, "--cert", scert, "--key", skey, "--chain", inter)
    proc = subprocess.run(
        [
            openssl,
            "cms",
            "-verify",
            "-in",
            signed,
            "-CAfile",
            org.cert("root"),
            "-purpose",
            "smimesign",
            "-out",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    r = org.run("verify", "-i", signed, "--trust", org.cert("root"), "--revocation", "off")
    assert "valid" in r.stdout
    sealed = tmp_path / "sealed.eml"
    org.run("encrypt", "-i", mail, "-o", sealed, "--to", ecert, "--no-self")
    proc = subprocess.run(
        [openssl, "cms", "-decrypt", "-in", sealed, "-recip", ecert, "-inkey", ekey],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"issued by mailseal" in proc.stdout


def test_hostile_issuance_writes_nothing(org: Org, tmp_path: Path) -> None:
    before = org.db_rows()
    garbage = tmp_path / "garbage.csr"
    garbage.write_bytes(
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca_csr = tmp_path / "ca.csr"
    ca_csr.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    good = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    bad_sig = tmp_path / "badsig.csr"
    bad_sig.write_bytes(good[:-3] + bytes([good[-3] ^ 1]) + good[-2:])
    cases = [
        ("--email", "a@example.org", "--csr", garbage),
        ("--email", "a@example.org", "--csr", ca_csr),
        ("--email", "a@example.org", "--csr", bad_sig),
        ("--email", "mallory@elsewhere.example"),
        ("--email", "not-an-address"),
        ("--email", "a@example.org", "--days", "900"),
    ]
    for case in cases:
        r = org.run(
            "issue", *case, "--out", tmp_path / "o", "--passphrase-env", "CA_PASS", ok=False
        )
        assert r.returncode == 2, (case, r.stdout, r.stderr)
        assert r.stderr.startswith("mailseal: error:") and "Traceback" not in r.stderr, r.stderr
    assert org.db_rows() == before


def test_wrong_passphrase_is_a_clean_error(org: Org) -> None:
    env = {**org.env, "CA_PASS": "not the passphrase"}
    proc = subprocess.run(
        [*MAILSEAL, "issue", "--email", "x@example.org", "--passphrase-env", "CA_PASS"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "wrong CA passphrase" in proc.stderr and "not the passphrase" not in proc.stderr


# -- serve: OCSP and CRLs over HTTP ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(org: Org) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*MAILSEAL, "serve", "--port", str(port), "--passphrase-env", "CA_PASS"],
        env=org.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError("mailseal serve did not start")
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def _ocsp(org: Org, base: str, *target: str | Path) -> str:
    openssl = _need("openssl")
    proc = subprocess.run(
        [
            openssl,
            "ocsp",
            "-issuer",
            org.cert("issuing"),
            *(str(t) for t in target),
            "-url",
            f"{base}/ocsp",
            "-CAfile",
            org.cert("root"),
            "-verify_other",
            org.cert("issuing"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return proc.stdout + proc.stderr


def test_ocsp_good_revoked_unknown_and_crl_within_one_request(
    org: Org, server: str, tmp_path: Path
) -> None:
    openssl = _need("openssl")
    out = tmp_path / "bob"
    org.run(
        "issue",
        "--email",
        "bob@example.org",
        "--usage",
        "signing",
        "--out",
        out,
        "--passphrase-env",
        "CA_PASS",
        "--p12-password-env",
        "CA_PASS",
    )
    leaf = out / "bob-signing.crt"
    said = _ocsp(org, server, "-cert", leaf)
    assert "Response verify OK" in said and ": good" in said, said
    said = _ocsp(org, server, "-serial", "0x1234567890")
    assert "Response verify OK" in said and ": unknown" in said, said
    serial = next(c["serial"] for c in org.certs_json() if c["email"] == "bob@example.org")
    org.run(
        "revoke", "--serial", serial, "--reason", "keyCompromise", "--passphrase-env", "CA_PASS"
    )
    # the very next request sees it, with and without a nonce
    for nonce in ([], ["-no_nonce"]):
        said = _ocsp(org, server, "-cert", leaf, *nonce)
        assert ": revoked" in said and "Reason: keyCompromise" in said, said
        assert "Revocation Time:" in said
    with urllib.request.urlopen(f"{server}/crl/issuing.crl", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/pkix-crl"
        crl_der = resp.read()
    crl_file = tmp_path / "issuing.crl"
    crl_file.write_bytes(crl_der)
    proc = subprocess.run(
        [
            openssl,
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_file,
            "-CAfile",
            org.cert("issuing"),
            "-noout",
            "-verify",
            "-text",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "verify OK" in proc.stdout + proc.stderr, proc.stderr
    assert serial.upper() in proc.stdout.upper().replace(":", "")
    with urllib.request.urlopen(f"{server}/crl/issuing-delta.crl", timeout=10) as resp:
        delta = x509.load_der_x509_crl(resp.read())
    assert delta.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    with urllib.request.urlopen(f"{server}/ca/issuing.crt", timeout=10) as resp:
        assert x509.load_der_x509_certificate(resp.read()).subject.rfc4514_string()


def test_hostile_http_is_4xx_or_an_ocsp_error_never_5xx(server: str) -> None:
    def call(path: str, body: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(server + path, data=body, method="POST" if body else "GET")
        if body is not None:
            req.add_header("Content-Type", "application/ocsp-request")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    malformed = b"\x30\x03\x0a\x01\x01"  # OCSPResponse, status malformedRequest
    assert call("/ocsp", b"garbage") == (200, malformed)
    assert call("/ocsp", b"\x30\x84\xff\xff\xff\xff") == (200, malformed)
    assert call("/ocsp", b"\x30" * 5000) == (200, malformed)
    assert call("/ocsp", b"\x00" * (64 * 1024))[0] == 413
    assert call("/ocsp/%%%%not-base64") == (200, malformed)
    assert call("/ocsp/" + "A" * 40000)[0] == 414
    assert call("/crl/../../etc/passwd")[0] == 404
    assert call("/crl/nope.crl")[0] == 404
    assert call("/ca/nope.crt")[0] == 404
    status, body = call("/metrics")
    assert status == 200 and b'route="ocsp"' in body
    assert b'status="5' not in body


# -- the same flows on PostgreSQL, and with the CA keys in SoftHSM2 -------------------------------
def test_issue_and_revoke_on_postgresql(database_url: Callable[[str], str], tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        organization="Postgres Ltd",
        domains=("example.org",),
        database_url=database_url("postgresql"),
    )
    secrets = Secrets(passphrase=PASSPHRASE.encode())
    authority = init_organisation(settings, secrets, key_type="p256")
    try:
        issued = authority.issue(email="pat@example.org")
        assert [i.usage for i in issued] == ["signing", "encryption"]
        revoked = authority.revoke(email="pat@example.org", reason="affiliationChanged")
        assert sorted(revoked) == sorted(i.serial for i in issued)
        crl_der, _ = authority.crl("issuing") or (b"", 0)
        crl = x509.load_der_x509_crl(crl_der)
        assert len(list(crl)) == 2
    finally:
        authority.close()
    reopened = Authority.open(settings, secrets)
    try:
        rows = reopened.certificates(email="pat@example.org")
        assert {r.status for r in rows} == {"revoked"}
    finally:
        reopened.close()


def test_ca_keys_in_softhsm(tmp_path: Path) -> None:
    hsm = private_softhsm(tmp_path / "softhsm", ("mailseal-ca",), pin="123456", so_pin="12345678")
    module = hsm.module
    env = {**os.environ, "SOFTHSM2_CONF": str(hsm.conf), "HSM_PIN": "123456"}
    org = _org(
        tmp_path,
        "--pkcs11-module",
        str(module),
        "--pkcs11-token",
        "mailseal-ca",
        "--pin-env",
        "HSM_PIN",
        env_extra=env,
    )
    assert list((org.home / "keys").iterdir()) == []  # no key file: the keys are in the token
    out = tmp_path / "o"
    org.run(
        "issue",
        "--email",
        "hsm@example.org",
        "--usage",
        "signing",
        "--out",
        out,
        "--p12-password-env",
        "CA_PASS",
    )
    openssl = _need("openssl")
    proc = subprocess.run(
        [
            openssl,
            "verify",
            "-purpose",
            "smimesign",
            "-CAfile",
            org.cert("root"),
            "-untrusted",
            org.cert("issuing"),
            out / "hsm-signing.crt",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    org.run("revoke", "--email", "hsm@example.org", "--reason", "cessationOfOperation")
    crl = tmp_path / "i.crl"
    org.run("crl", "-o", crl)
    proc = subprocess.run(
        [
            openssl,
            "crl",
            "-inform",
            "DER",
            "-in",
            crl,
            "-CAfile",
            org.cert("issuing"),
            "-noout",
            "-verify",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    wrong = subprocess.run(
        [*MAILSEAL, "crl", "--new"],
        env={**org.env, "HSM_PIN": "999999"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 2 and "999999" not in wrong.stderr, wrong.stderr


def test_serve_demo_initialises_on_first_start(tmp_path: Path) -> None:
    """What `make run` does: the first start creates a demo organisation, later starts reuse it."""
    env = {**os.environ, "MAILSEAL_HOME": str(tmp_path / "demo-home")}
    for attempt in range(2):
        port = _free_port()
        proc = subprocess.Popen(
            [*MAILSEAL, "serve", "--demo", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                        break
                except OSError:
                    assert proc.poll() is None, proc.communicate()
                    assert time.monotonic() < deadline, "no answer from serve --demo"
                    time.sleep(0.3)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=10)
        assert ("first start" in out) == (attempt == 0), out + err
        assert "/ocsp" in out and "Traceback" not in err
    home = tmp_path / "demo-home"
    assert (home / "demo" / "alice-signing.crt").exists()
    assert (home / "demo-passphrase").stat().st_mode & 0o777 == 0o600


def test_gpgsm_accepts_issued_certificates(tmp_path: Path) -> None:
    """gpgsm (libksba) cannot process name constraints, so it refuses a CA whose name
    constraints are critical (RFC 5280's rule, mailseal's default); with
    --noncritical-name-constraints it validates the chain, verifies mail signed with an issued
    signing certificate and encrypts to an issued encryption certificate."""
    gpgsm = _need("gpgsm")
    gpgconf = _need("gpgconf")
    openssl = _need("openssl")

    def gnupg(name: str, org: Org) -> dict[str, str]:
        home = tmp_path / name
        home.mkdir(mode=0o700)
        (home / "gpgsm.conf").write_text("disable-crl-checks\n")
        fp = x509.load_pem_x509_certificate(org.cert("root").read_bytes()).fingerprint(
            hashes.SHA1()
        )
        (home / "trustlist.txt").write_text(":".join(f"{b:02X}" for b in fp) + " S\n")
        return {**os.environ, "GNUPGHOME": str(home)}

    def g(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [gpgsm, "--batch", *(str(a) for a in args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    for flag, accepted in (((), False), (("--noncritical-name-constraints",), True)):
        org = _org(tmp_path / f"org{accepted}", *flag)
        out = tmp_path / f"out{accepted}"
        org.run(
            "issue",
            "--email",
            "gina@example.org",
            "--key-type",
            "rsa2048",
            "--out",
            out,
            "--passphrase-env",
            "CA_PASS",
            "--p12-password-env",
            "CA_PASS",
        )
        env = gnupg(f"gnupg{accepted}", org)
        try:
            g(
                env,
                "--import",
                org.cert("root"),
                org.cert("issuing"),
                out / "gina-signing.crt",
                out / "gina-encryption.crt",
            )
            listing = g(env, "--with-validation", "--list-keys", "gina@example.org")
            bad = "certificate is bad" in listing.stdout + listing.stderr
            assert bad is not accepted, listing.stdout + listing.stderr
            if not accepted:
                continue
            msg = tmp_path / "msg.txt"
            msg.write_bytes(b"Content-Type: text/plain\r\n\r\nfrom the internal CA\r\n")
            p12 = out / "gina-signing.p12"
            key = tmp_path / "s.key"
            subprocess.run(
                [
                    openssl,
                    "pkcs12",
                    "-in",
                    p12,
                    "-nocerts",
                    "-nodes",
                    "-out",
                    key,
                    "-passin",
                    f"pass:{PASSPHRASE}",
                ],
                check=True,
                capture_output=True,
            )
            sig = tmp_path / "msg.p7s"
            subprocess.run(
                [
                    openssl,
                    "cms",
                    "-sign",
                    "-binary",
                    "-in",
                    msg,
                    "-signer",
                    out / "gina-signing.crt",
                    "-inkey",
                    key,
                    "-outform",
                    "DER",
                    "-out",
                    sig,
                ],
                check=True,
                capture_output=True,
            )
            v = g(env, "--status-fd", "1", "--verify", sig, msg)
            assert "GOODSIG" in v.stdout and "TRUST_FULLY" in v.stdout, v.stdout + v.stderr
            enc = g(
                env,
                "--status-fd",
                "1",
                "-r",
                "gina@example.org",
                "-o",
                tmp_path / "m.p7m",
                "--encrypt",
                msg,
            )
            assert enc.returncode == 0 and "encrypted data created" in enc.stderr, enc.stderr
            assert (tmp_path / "m.p7m").stat().st_size > 0
        finally:
            subprocess.run([gpgconf, "--kill", "all"], env=env, check=False)


# -- renewal, an offline root, an imported CA -----------------------------------------------------
def _settings(tmp_path: Path, name: str) -> Settings:
    return Settings(home=tmp_path / name, organization="Lifecycle Ltd", domains=("example.org",))


SECRETS = Secrets(passphrase=PASSPHRASE.encode())


def test_renew_issues_new_keys_and_can_revoke_the_old(tmp_path: Path) -> None:
    authority = init_organisation(_settings(tmp_path, "renew"), SECRETS, key_type="p256")
    try:
        first = authority.issue(email="ren@example.org", profile="mailbox-multipurpose")
        second = authority.renew(email="ren@example.org", revoke_old="superseded")
        assert [i.usage for i in second] == ["signing", "encryption"]
        assert {i.profile for i in second} == {"mailbox-multipurpose"}
        assert {i.serial for i in first}.isdisjoint(i.serial for i in second)
        rows = {r.serial: r.status for r in authority.certificates(email="ren@example.org")}
        assert all(rows[i.serial] == "revoked" for i in first)
        assert all(rows[i.serial] == "valid" for i in second)
        crl = x509.load_der_x509_crl((authority.crl("issuing") or (b"", 0))[0])
        entry = crl.get_revoked_certificate_by_serial_number(first[0].certificate.serial_number)
        assert entry is not None
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
            x509.ReasonFlags.superseded
        )
        with pytest.raises(Exception, match="no valid certificate"):
            authority.renew(email="nobody@example.org")
    finally:
        authority.close()


def test_offline_root(tmp_path: Path) -> None:
    target = tmp_path / "root-offline.pem"
    settings = _settings(tmp_path, "offline")
    authority = init_organisation(settings, SECRETS, key_type="p256", export_root_key=target)
    try:
        assert target.stat().st_mode & 0o777 == 0o600
        assert not (settings.home / "keys" / "root.key.pem").exists()
        assert authority.crl("root") is not None  # issued before the key left
        assert authority.issue(email="off@example.org", usage="signing")
        assert authority.publish_crls() == [("issuing", authority.publish_crls()[0][1] - 2)]
    finally:
        authority.close()


def test_import_an_existing_ca(tmp_path: Path) -> None:
    from mailseal.keys.software import SoftwareKey
    from mailseal.pki.ca import create_issuing, create_root

    root_key = ec.generate_private_key(ec.SECP384R1())
    root = create_root(
        SoftwareKey(root_key),
        root_key.public_key(),
        organization="Old Corp",
        common_name="Old Corp Root",
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuing = create_issuing(
        root,
        SoftwareKey(root_key),
        ca_key.public_key(),
        organization="Old Corp",
        common_name="Old Corp Mail CA",
        crl_url="http://pki.example.org/root.crl",
        ca_issuers_url="http://pki.example.org/root.crt",
        permitted_domains=("example.org",),
    )
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (issuing, root))
    key_pem = ca_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"old password"),
    )
    settings = _settings(tmp_path, "import")
    with pytest.raises(Exception, match="does not belong"):
        init_organisation(
            settings,
            SECRETS,
            import_certificate=pem,
            import_key=root_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    settings = _settings(tmp_path, "import2")
    authority = init_organisation(
        settings,
        SECRETS,
        import_certificate=pem,
        import_key=key_pem,
        import_key_password=b"old password",
    )
    try:
        assert sorted(authority.cas) == ["issuing", "root"]
        (cert,) = authority.issue(email="imp@example.org", usage="signing")
        cert.certificate.verify_directly_issued_by(issuing)
        assert b"old password" not in (settings.home / "keys" / "issuing.key.pem").read_bytes()
    finally:
        authority.close()


def test_delegated_ocsp_responder(tmp_path: Path) -> None:
    """With --ocsp-responder delegated, responses are signed by a responder certificate the
    issuing CA issued (ocspSigning, ocsp-nocheck), which openssl accepts."""
    org = _org(tmp_path, "--ocsp-responder", "delegated")
    out = tmp_path / "d"
    org.run(
        "issue",
        "--email",
        "del@example.org",
        "--usage",
        "signing",
        "--out",
        out,
        "--passphrase-env",
        "CA_PASS",
        "--p12-password-env",
        "CA_PASS",
    )
    port = _free_port()
    proc = subprocess.Popen(
        [*MAILSEAL, "serve", "--port", str(port)],
        env=org.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        responder = x509.load_pem_x509_certificate(org.cert("ocsp-issuing").read_bytes())
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]
        for nonce in ([], ["-no_nonce"]):
            said = _ocsp(org, base, "-cert", out / "del-signing.crt", *nonce)
            assert "Response verify OK" in said and ": good" in said, said
        serial = org.certs_json()[0]["serial"]
        org.run("revoke", "--serial", serial, "--reason", "privilegeWithdrawn")
        said = _ocsp(org, base, "-cert", out / "del-signing.crt", "-no_nonce")
        assert "Response verify OK" in said and ": revoked" in said, said
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_refresh_resigns_what_reached_half_its_validity(tmp_path: Path) -> None:
    import datetime as dt

    authority = init_organisation(_settings(tmp_path, "refresh"), SECRETS, key_type="p256")
    try:
        authority.issue(email="fresh@example.org")
        # all fresh; the audit log (init, issuance) is sealed with a checkpoint once
        assert authority.refresh() == {"ocsp": 0, "crl": 0, "audit": 1}
        assert authority.refresh() == {"ocsp": 0, "crl": 0, "audit": 0}
        later = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=4)
        done = authority.refresh(now=later)
        assert done["ocsp"] == 2 and done["crl"] == 1  # two responses; the issuing CA's CRL
        crl = x509.load_der_x509_crl((authority.crl("issuing") or (b"", 0))[0])
        assert crl.last_update_utc == later
    finally:
        authority.close()


def test_refresher_thread_runs_beside_requests(tmp_path: Path) -> None:
    """`mailseal serve`'s background refresher and request handling share one Authority."""
    from mailseal.api.server import Refresher

    authority = init_organisation(_settings(tmp_path, "thread"), SECRETS, key_type="p256")
    try:
        authority.issue(email="t@example.org", usage="signing")
        refresher = Refresher(authority, interval=0.02)
        refresher.start()
        try:
            deadline = time.monotonic() + 10
            while refresher.runs < 3 and time.monotonic() < deadline:
                assert authority.health()["status"] == "ok"
                time.sleep(0.01)
        finally:
            refresher.stop()
            refresher.join(timeout=5)
        assert refresher.runs >= 3
    finally:
        authority.close()
