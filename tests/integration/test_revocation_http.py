"""Revocation over real HTTP on loopback: an ``openssl ca`` test CA whose CRLs are served by an
HTTP server on 127.0.0.1 and whose OCSP responder is ``openssl ocsp`` (the recipe in
/work/shared/interop/openssl-ocsp-crl.sh), checked by mailseal with its HTTP fetcher.

Cases: good, revoked (OCSP and CRL), unknown to the responder, responder down (soft-fail and
hard-fail, with and without a CRL to fall back on), a stale CRL, a CRL signed by the wrong key,
caching (no second request), and the command line with and without ``--offline``.

Needs ``openssl``: skipped without it, failed when MAILSEAL_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mailseal
from mailseal.cli.fetcher import HttpFetcher
from mailseal.cli.main import main
from mailseal.validation.fetch import FetchRequest

Status = mailseal.Status
TIMEOUT = 60

CA_CNF = """\
[ca]
default_ca = c
[c]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
crlnumber = ./crlnumber
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
default_days = 30
default_crl_days = 7
policy = p
unique_subject = no
copy_extensions = none
[p]
commonName = supplied
emailAddress = optional
organizationName = optional
[ocsp]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Files:
    """What the HTTP server serves: path -> body (swappable by tests)."""

    routes: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)


def _serve(files: Files) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            files.hits.append(self.path)
            body = files.routes.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/pkix-crl")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@dataclass
class Pki:
    dir: Path
    crl_port: int
    ocsp_port: int
    dead_port: int
    files: Files

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def crl_url(self) -> str:
        return f"http://127.0.0.1:{self.crl_port}"

    def identity(self, name: str) -> mailseal.Identity:
        return mailseal.load_identity(
            self.path(f"{name}.crt").read_bytes(), self.path(f"{name}.key").read_bytes()
        )

    def anchor(self) -> mailseal.Trust:
        return mailseal.Trust(mailseal.load_certificates(self.path("ca.crt").read_bytes()))

    def signed(self, name: str) -> bytes:
        mail = (
            f"From: {name}@example.org\r\nTo: someone@example.org\r\nSubject: revocation\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        ).encode()
        return mailseal.sign(mail, self.identity(name))


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def http_pki(
    tmp_path_factory: pytest.TempPathFactory, require_peer: Callable[[str], dict[str, str]]
) -> Iterator[Pki]:
    openssl = require_peer("openssl")["openssl"]
    d = tmp_path_factory.mktemp("revocation-http")
    (d / "newcerts").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text(CA_CNF)
    files = Files()
    server, crl_port = _serve(files)
    ocsp_port, dead_port = _free_port(), _free_port()
    ocsp_url = f"http://127.0.0.1:{ocsp_port}/"
    dead_url = f"http://127.0.0.1:{dead_port}/"
    crl = f"http://127.0.0.1:{crl_port}"

    def ossl(*args: str) -> None:
        _run([openssl, *args], d)

    ossl(
        "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
        "-subj", "/O=Revocation HTTP Test/CN=Revocation HTTP Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip

    def issue(name: str, *, crl_path: str | None, ocsp: str | None, in_db: bool = True) -> None:
        ossl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes",
            "-subj", f"/O=Revocation HTTP Test/CN={name}/emailAddress={name}@example.org",
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip
        ext = [
            "[smime]",
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage = emailProtection",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid",
            f"subjectAltName = email:{name}@example.org",
        ]
        if crl_path:
            ext.append(f"crlDistributionPoints = URI:{crl}{crl_path}")
        if ocsp:
            ext.append(f"authorityInfoAccess = OCSP;URI:{ocsp}")
        (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
        if in_db:
            ossl(
                "ca", "-batch", "-config", "ca.cnf", "-extfile", f"{name}.ext",
                "-extensions", "smime", "-in", f"{name}.csr", "-out", f"{name}.crt",
            )  # fmt: skip
        else:  # signed by the CA, but not in its database: "unknown" to the responder
            ossl(
                "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", "0x7777", "-days", "30", "-sha256",
                "-extfile", f"{name}.ext", "-extensions", "smime", "-out", f"{name}.crt",
            )  # fmt: skip

    issue("alice", crl_path="/ca.crl", ocsp=ocsp_url)  # good
    issue("bob", crl_path="/ca.crl", ocsp=ocsp_url)  # revoked
    issue("carol", crl_path=None, ocsp=ocsp_url, in_db=False)  # unknown to the responder
    issue("dave", crl_path="/missing.crl", ocsp=dead_url)  # everything down
    issue("erin", crl_path="/ca.crl", ocsp=dead_url)  # responder down, CRL up
    issue("frank", crl_path="/stale.crl", ocsp=None)
    issue("gina", crl_path="/wrongkey.crl", ocsp=None)
    issue("hank", crl_path="/ca-bob.crl", ocsp=None)  # CRL only, good
    issue("ocsp", crl_path=None, ocsp=None)
    ossl("ca", "-batch", "-config", "ca.cnf", "-extensions", "ocsp", "-in", "ocsp.csr",
         "-out", "ocsp.crt")  # fmt: skip
    ossl("ca", "-batch", "-config", "ca.cnf", "-revoke", "bob.crt", "-crl_reason",
         "keyCompromise")  # fmt: skip
    ossl("ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl")

    def ago(days: int) -> str:
        return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - days * 86400))

    ossl("ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "stale.crl",
         "-crl_lastupdate", ago(10), "-crl_nextupdate", ago(1))  # fmt: skip
    ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "wrong.key")
    wrong = subprocess.run(
        [openssl, "ca", "-batch", "-config", "ca.cnf", "-gencrl", "-keyfile", "wrong.key",
         "-out", "wrongkey.crl"],
        cwd=d, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    if wrong.returncode != 0:  # this openssl refuses a mismatched key: sign it elsewhere
        _forge_crl(d)
    files.routes["/ca.crl"] = (d / "ca.crl").read_bytes()
    files.routes["/ca-bob.crl"] = files.routes["/ca.crl"]
    files.routes["/stale.crl"] = (d / "stale.crl").read_bytes()
    files.routes["/wrongkey.crl"] = (d / "wrongkey.crl").read_bytes()

    log = (d / "ocsp.log").open("wb")
    responder = subprocess.Popen(
        [openssl, "ocsp", "-index", "index.txt", "-CA", "ca.crt", "-rsigner", "ocsp.crt",
         "-rkey", "ocsp.key", "-port", str(ocsp_port), "-ndays", "1"],
        cwd=d, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # no probe connection: openssl ocsp serves one connection at a time and a probe that
        # sends nothing would stall it. It logs "ACCEPT" once it listens.
        deadline = time.monotonic() + 10
        while b"ACCEPT" not in (d / "ocsp.log").read_bytes():
            if responder.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"openssl ocsp did not start: {(d / 'ocsp.log').read_text()}")
            time.sleep(0.05)
        yield Pki(d, crl_port, ocsp_port, dead_port, files)
    finally:
        responder.terminate()
        try:
            responder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            responder.kill()
        log.close()
        server.shutdown()
        server.server_close()


def _forge_crl(d: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    key = load_pem_private_key((d / "wrong.key").read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (d / "wrongkey.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))


def _trust(http_pki: Pki, mode: str = "hard") -> mailseal.Trust:
    anchors = mailseal.load_certificates(http_pki.path("ca.crt").read_bytes())
    return mailseal.Trust(anchors, revocation=mode, fetcher=HttpFetcher())  # type: ignore[arg-type]


def _signer(result: mailseal.VerifyResult) -> mailseal.SignerVerdict:
    (signer,) = result.signers
    return signer


# -- OCSP -----------------------------------------------------------------------------------------
def test_good_by_ocsp(http_pki: Pki) -> None:
    signer = _signer(mailseal.verify(http_pki.signed("alice"), trust=_trust(http_pki)))
    assert signer.valid, signer.describe()
    assert signer.validation is not None and signer.validation.revocation_checked
    (ev,) = signer.validation.revocation
    assert (ev.status, ev.source) == ("good", "ocsp")
    assert ev.origin == f"fetched from http://127.0.0.1:{http_pki.ocsp_port}/"
    assert ev.issuer  # the responder


def test_revoked_by_ocsp(http_pki: Pki) -> None:
    for mode in ("soft", "hard"):
        result = mailseal.verify(http_pki.signed("bob"), trust=_trust(http_pki, mode))
        assert result.status is Status.REVOKED
        (ev,) = _signer(result).validation.revocation  # type: ignore[union-attr]
        assert (ev.status, ev.source, ev.reason) == ("revoked", "ocsp", "keyCompromise")


def test_unknown_to_the_responder(http_pki: Pki) -> None:
    hard = mailseal.verify(http_pki.signed("carol"), trust=_trust(http_pki, "hard"))
    assert hard.status is Status.REVOCATION_UNKNOWN
    assert "status unknown" in _signer(hard).problems[0].message
    soft = mailseal.verify(http_pki.signed("carol"), trust=_trust(http_pki, "soft"))
    assert soft.valid
    assert _signer(soft).describe().endswith("revocation not checked")


def test_responder_down(http_pki: Pki) -> None:
    hard = mailseal.verify(http_pki.signed("dave"), trust=_trust(http_pki, "hard"))
    assert hard.status is Status.REVOCATION_UNKNOWN
    message = _signer(hard).problems[0].message
    assert f"127.0.0.1:{http_pki.dead_port}" in message and "HTTP 404" in message
    soft = mailseal.verify(http_pki.signed("dave"), trust=_trust(http_pki, "soft"))
    assert soft.valid
    assert any("revocation not checked" in n for n in _signer(soft).notes)


def test_responder_down_crl_decides(http_pki: Pki) -> None:
    signer = _signer(mailseal.verify(http_pki.signed("erin"), trust=_trust(http_pki, "hard")))
    assert signer.valid, signer.describe()
    (ev,) = signer.validation.revocation  # type: ignore[union-attr]
    assert (ev.source, ev.origin) == ("crl", f"fetched from {http_pki.crl_url}/ca.crl")


# -- CRLs -----------------------------------------------------------------------------------------
def test_revoked_by_crl(http_pki: Pki) -> None:
    # bob's certificate names the OCSP responder too; without it, the CRL decides
    anchors = mailseal.load_certificates(http_pki.path("ca.crt").read_bytes())
    crl_only = mailseal.Trust(
        anchors, crls=[http_pki.path("ca.crl").read_bytes()], revocation="hard"
    )
    result = mailseal.verify(http_pki.signed("bob"), trust=crl_only)
    assert result.status is Status.REVOKED
    (ev,) = _signer(result).validation.revocation  # type: ignore[union-attr]
    assert (ev.source, ev.reason) == ("crl", "keyCompromise")


def test_good_by_fetched_crl_and_cached(http_pki: Pki) -> None:
    trust = _trust(http_pki)
    http_pki.files.hits.clear()
    signed = http_pki.signed("hank")
    assert mailseal.verify(signed, trust=trust).valid
    assert http_pki.files.hits == ["/ca-bob.crl"]
    assert mailseal.verify(signed, trust=trust).valid
    trust._cache.clear()  # a validation-cache miss still finds the CRL cached until nextUpdate
    assert mailseal.verify(signed, trust=trust).valid
    assert http_pki.files.hits == ["/ca-bob.crl"]


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_stale_crl(http_pki: Pki, mode: str) -> None:
    result = mailseal.verify(http_pki.signed("frank"), trust=_trust(http_pki, mode))
    if mode == "hard":
        assert result.status is Status.REVOCATION_UNKNOWN
    else:
        assert result.valid and not _signer(result).validation.revocation_checked  # type: ignore[union-attr]


def test_crl_signed_by_the_wrong_key(http_pki: Pki) -> None:
    result = mailseal.verify(http_pki.signed("gina"), trust=_trust(http_pki, "hard"))
    assert result.status is Status.REVOCATION_UNKNOWN


# -- the fetcher and the command line -------------------------------------------------------------
def test_http_fetcher_errors(http_pki: Pki) -> None:
    from mailseal.validation.fetch import FetchError

    f = HttpFetcher()
    assert (
        f.fetch(FetchRequest(f"{http_pki.crl_url}/ca.crl", "crl"))
        == http_pki.files.routes["/ca.crl"]
    )
    with pytest.raises(FetchError, match="HTTP 404"):
        f.fetch(FetchRequest(f"{http_pki.crl_url}/nothing.crl", "crl"))
    with pytest.raises(FetchError, match="cannot reach"):
        f.fetch(FetchRequest(f"http://127.0.0.1:{http_pki.dead_port}/", "crl", timeout=2))
    with pytest.raises(FetchError, match="only http"):
        f.fetch(FetchRequest("file:///etc/passwd", "crl"))
    with pytest.raises(FetchError, match="more than"):
        f.fetch(FetchRequest(f"{http_pki.crl_url}/ca.crl", "crl", max_bytes=10))


def _cli(*argv: str | Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code if isinstance(exc.value.code, int) else 2


def test_cli_fetches_unless_offline(http_pki: Pki, tmp_path: Path) -> None:
    for name in ("alice", "bob"):
        (tmp_path / f"{name}.eml").write_bytes(http_pki.signed(name))
    common = ["--trust", http_pki.path("ca.crt"), "--revocation", "hard"]
    assert _cli("verify", "-i", tmp_path / "alice.eml", *common) == 0
    assert _cli("verify", "-i", tmp_path / "bob.eml", *common) == 1
    assert _cli("verify", "-i", tmp_path / "alice.eml", *common, "--offline") == 1
    assert _cli("validate", http_pki.path("alice.crt"), *common) == 0
    assert _cli("validate", http_pki.path("bob.crt"), *common, "--purpose", "encrypt") == 1
