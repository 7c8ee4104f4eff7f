"""The internal CA: issuance rate with the database write, and OCSP over HTTP (the CA issue's
targets).

``ca-issue``: :meth:`Authority.issue` (``usage="encryption"``, one certificate per call, a
server-side P-256 key) for N new mailboxes, against a freshly initialised organisation with
the default CA keys (P-384, as ``mailseal init`` makes them) and its SQLite database. Every call
generates the key, builds and lints the certificate, signs it, pre-signs its OCSP response and
commits certificate, mailbox, OCSP response and audit record in one transaction. The
references sign N P-256 CSRs prepared beforehand with the same issuing CA key and equivalent
extensions (the SAN copied from the CSR): ``openssl x509 -req`` once per certificate (what an
OpenSSL-scripted CA does) and ``openssl ca -batch -infiles`` over all N in one process (the
amortised figure, with openssl's own "database", index.txt, written). The mailseal and the
``openssl x509`` rounds alternate.

``ca-ocsp``: ``mailseal serve`` in a subprocess on 127.0.0.1 over a fresh organisation with a
few hundred certificates, loaded with ``wrk`` POSTing one fixed OCSP request (SHA-1 CertID,
no nonce, so the pre-signed response is served; the bench checks that the bytes are the
stored ones). The reference is ``openssl ocsp -index`` (one process, signing every response)
with an index.txt for the same CA and certificates, loaded the same way. GET (RFC 6960 A.1)
against mailseal is measured as well. wrk's latency percentiles are not corrected for
coordinated omission; wrk and the server share the machine.

    python -m bench --only 'ca-*'          # with the other benchmarks' table and JSON file
    python -m bench.ca [issue|ocsp] [--n N] [--duration S] [--quick]   # alone, no JSON
    python -m bench.ca profile-issue [--n N] [--top K]    # cProfile of Authority.issue

Needs ``openssl`` and ``wrk`` (Debian: ``apt-get install wrk``) on PATH.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from bench.common import OPENSSL, BenchError, Figure, Target

CA_KEY = "p384"  # the default of `mailseal init`
PASSPHRASE = b"mailseal-bench-passphrase"
PASSPHRASE_ENV = "MAILSEAL_BENCH_PASSPHRASE"
DOMAIN = "example.org"
ISSUE_N = 500
QUICK_ISSUE_N = 100
ROUNDS = 5
OCSP_CERTS = 300
WRK = shutil.which("wrk")
WRK_THREADS = 2
WRK_CONNECTIONS = 32


# -- an organisation ------------------------------------------------------------------------------


def _organisation(home: Path, ca_key: str = CA_KEY) -> Any:
    from mailseal.config import Settings
    from mailseal.lifecycle.authority import Secrets, init_organisation

    settings = Settings(home=home, organization="Bench Org", domains=(DOMAIN,))
    return init_organisation(settings, Secrets(passphrase=PASSPHRASE), key_type=ca_key)


def _issue_rate(home: Path, n: int, ca_key: str) -> float:
    """mailseal alone: ``n`` issuances under a CA with ``ca_key`` keys (certificates/s)."""
    authority = _organisation(home, ca_key)
    try:
        for i in range(10):
            authority.issue(email=f"warm{i}@{DOMAIN}", usage="encryption")
        start = time.perf_counter()
        for i in range(n):
            authority.issue(email=f"user{i}@{DOMAIN}", usage="encryption")
        return n / (time.perf_counter() - start)
    finally:
        authority.close()


def _openssl_ca_files(home: Path, out: Path) -> tuple[Path, Path]:
    """The issuing CA's certificate and its key, decrypted, for the openssl commands."""
    out.mkdir(parents=True, exist_ok=True)
    cert = out / "ca.pem"
    key = out / "ca.key"
    shutil.copyfile(home / "ca" / "issuing.crt", cert)
    loaded = serialization.load_pem_private_key(
        (home / "keys" / "issuing.key.pem").read_bytes(), PASSPHRASE
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            loaded.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert, key


def _curve(key_type: str) -> str:
    return {"p256": "P-256", "p384": "P-384"}.get(key_type, key_type)


def _hash_for(cert: x509.Certificate) -> str:
    """The digest mailseal signs with under this CA key (openssl's -sha384 / -rmd)."""
    algo = cert.signature_hash_algorithm
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {256: "sha256", 384: "sha384", 521: "sha512"}.get(pub.key_size, "sha256")
    return algo.name if algo is not None else "sha256"


def _count(authority: Any) -> tuple[int, int]:
    """Certificates and OCSP responses in the database."""
    from sqlalchemy import func, select

    from mailseal.store.models import Certificate, OCSPResponse

    with authority.db.session(readonly=True) as s:
        certs = s.scalar(select(func.count()).select_from(Certificate))
        responses = s.scalar(select(func.count()).select_from(OCSPResponse))
    return int(certs or 0), int(responses or 0)


# -- issuance -------------------------------------------------------------------------------------

_EXT = """[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
extendedKeyUsage = emailProtection
certificatePolicies = 2.23.140.1.5.1.3
crlDistributionPoints = URI:http://127.0.0.1:8080/crl/issuing.crl
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
authorityInfoAccess = OCSP;URI:http://127.0.0.1:8080/ocsp, caIssuers;URI:http://127.0.0.1:8080/ca/issuing.crt
"""


def _csrs(d: Path, n: int) -> list[Path]:
    """``n`` P-256 CSRs, each with an email subjectAltName (made beforehand, not timed)."""
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        email = f"csr{i}@{DOMAIN}"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, email)]))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        p = d / f"{i}.csr"
        p.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        paths.append(p)
    return paths


def _openssl_x509(
    csrs: list[Path], ca: Path, key: Path, ext: Path, md: str, out: Path
) -> tuple[float, int]:
    """Sign ``csrs`` with one ``openssl x509 -req`` per certificate: (seconds, count)."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for p in csrs:
        cmd = [OPENSSL, "x509", "-req", "-in", str(p), "-CA", str(ca), "-CAkey", str(key)]
        cmd += ["-days", "365", f"-{md}", "-extfile", str(ext), "-extensions", "ext"]
        cmd += ["-copy_extensions", "copy", "-out", str(out / f"{p.stem}.pem")]
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"openssl x509 -req failed: {proc.stderr[-400:]!r}")
    return time.perf_counter() - start, len(csrs)


def _openssl_ca_batch(csrs: list[Path], ca: Path, key: Path, md: str, d: Path) -> tuple[float, int]:
    """Sign all ``csrs`` with one ``openssl ca -batch -infiles``: (seconds, certificates)."""
    d.mkdir(parents=True)
    (d / "certs").mkdir()
    (d / "index.txt").write_text("")
    (d / "index.txt.attr").write_text("unique_subject = no\n")
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca = c\n[c]\n"
        f"dir = {d}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/certs\n"
        f"certificate = {ca}\nprivate_key = {key}\nrand_serial = yes\n"
        f"default_md = {md}\ndefault_days = 365\npolicy = pol\ncopy_extensions = copy\n"
        "x509_extensions = ext\nunique_subject = no\nemail_in_dn = yes\npreserve = yes\n"
        "[pol]\nemailAddress = supplied\n" + _EXT
    )
    cmd = [OPENSSL, "ca", "-batch", "-notext", "-config", str(d / "ca.cnf")]
    cmd += ["-out", str(d / "all.pem"), "-infiles", *map(str, csrs)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"openssl ca -infiles failed: {proc.stderr[-400:]!r}")
    made = sum(1 for line in (d / "index.txt").read_text().splitlines() if line.startswith("V"))
    return seconds, made


def _check_openssl_cert(path: Path, issuer: x509.Certificate, who: str) -> None:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception as exc:
        raise BenchError(f"a certificate made by {who} does not verify: {exc}") from exc
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if not san.get_values_for_type(x509.RFC822Name):
        raise BenchError(f"a certificate made by {who} lacks the email SAN")


def issuance(workdir: Path, n: int, *, rounds: int = ROUNDS) -> list[Figure]:
    base = workdir / "ca-issue"
    base.mkdir(parents=True, exist_ok=True)
    authority = _organisation(base / "home")
    try:
        issuer = authority.cas["issuing"].certificate
        md = _hash_for(issuer)
        ca_pem, ca_key = _openssl_ca_files(base / "home", base / "openssl")
        ext = base / "openssl" / "ext.cnf"
        ext.write_text(_EXT)
        csrs = _csrs(base / "csr", n)
        for i in range(10):  # warm-up: imports, caches, the first transactions
            authority.issue(email=f"warm{i}@{DOMAIN}", usage="encryption")
        _openssl_x509(csrs[:3], ca_pem, ca_key, ext, md, base / "x509-warm")
        before = _count(authority)

        chunk = max(1, n // rounds)
        ms_rounds: list[float] = []
        x509_rounds: list[float] = []
        ms_total = x509_total = 0.0
        ms_n = x509_n = 0
        for r in range(rounds):
            start = time.perf_counter()
            for i in range(chunk):
                (issued,) = authority.issue(email=f"user{r}-{i}@{DOMAIN}", usage="encryption")
            took = time.perf_counter() - start
            ms_rounds.append(chunk / took)
            ms_total += took
            ms_n += chunk
            part = csrs[r * chunk : (r + 1) * chunk]
            took, done = _openssl_x509(part, ca_pem, ca_key, ext, md, base / "x509-out")
            x509_rounds.append(done / took)
            x509_total += took
            x509_n += done
        after = _count(authority)
        if after[0] - before[0] != ms_n or after[1] - before[1] != ms_n:
            raise BenchError(
                f"mailseal issued {ms_n} certificates but the database gained "
                f"{after[0] - before[0]} certificates and {after[1] - before[1]} OCSP responses"
            )
        issued.certificate.verify_directly_issued_by(issuer)
        _check_openssl_cert(base / "x509-out" / f"{csrs[0].stem}.pem", issuer, "openssl x509")

        batch: list[float] = []
        for k in range(2):  # the faster of two, each into a fresh directory
            seconds, made = _openssl_ca_batch(csrs, ca_pem, ca_key, md, base / f"ca-batch-{k}")
            if made != len(csrs):
                raise BenchError(f"openssl ca -infiles made {made} certificates, not {len(csrs)}")
            batch.append(len(csrs) / seconds)
        first = next((base / "ca-batch-0" / "certs").glob("*.pem"))
        _check_openssl_cert(first, issuer, "openssl ca")
    finally:
        authority.close()
    other_ca = "p256" if CA_KEY != "p256" else "p384"
    other = _issue_rate(base / f"home-{other_ca}", ms_n, other_ca)

    ms_rate = ms_n / ms_total
    x509_rate = x509_n / x509_total
    detail = {
        "ca_key": CA_KEY,
        "digest": md,
        "certificates": ms_n,
        "rounds": rounds,
        "mailseal_rounds_per_s": ms_rounds,
        "mailseal_seconds": ms_total,
        "openssl_x509_rounds_per_s": x509_rounds,
        "openssl_x509_seconds": x509_total,
        "openssl_ca_batch_per_s": batch,
        f"mailseal_{other_ca}_ca_per_s": other,
        "database": "SQLite (WAL, synchronous=NORMAL), the default",
    }
    label = f"issue 1 encryption cert, server P-256 key, {_curve(CA_KEY)} CA, + SQLite write"
    return [
        Figure(
            "ca-issue",
            label,
            ms_rate,
            "op/s",
            f"openssl x509 -req, 1 process per cert ({x509_n} CSRs)",
            x509_rate,
            Target("value", ">=", 300, "op/s"),
            note=f"{ms_n} certificates in {rounds} rounds alternating with openssl; median "
            f"round {statistics.median(ms_rounds):,.0f}/s; openssl is given the CSRs (no key "
            "generation) and writes no database",
            detail=detail,
        ),
        Figure(
            "ca-issue",
            label,
            ms_rate,
            "op/s",
            f"openssl ca -batch -infiles, 1 process, {len(csrs)} CSRs",
            max(batch),
            note="amortised reference: one openssl process signs them all and writes index.txt "
            "(faster of 2 runs)",
            detail=detail,
        ),
        Figure(
            "ca-issue",
            label.replace(_curve(CA_KEY), _curve(other_ca)),
            other,
            "op/s",
            note=f"informative: the same {ms_n} issuances under a {_curve(other_ca)} CA, "
            "not interleaved with openssl",
            detail=detail,
        ),
    ]


# -- OCSP over HTTP -------------------------------------------------------------------------------

# wrk's default wrk.resolve opens and closes a connection to every address before the run;
# OpenSSL 3.0's `openssl ocsp` server then spins on that empty connection and never answers
# again (openssl/openssl#23934, #31129). The scripts skip that probe.
_LUA_DONE = """
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"bytes\\": %d, "
    .. "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d, "
    .. "\\"p50_us\\": %.0f, \\"p90_us\\": %.0f, \\"p99_us\\": %.0f, \\"p999_us\\": %.0f, "
    .. "\\"max_us\\": %.0f, \\"mean_us\\": %.1f, \\"stdev_us\\": %.1f}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, latency.stdev))
end
"""


def _lua_post(body: bytes) -> str:
    escaped = "".join(f"\\{b:03d}" for b in body)
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/ocsp-request"\n' + _LUA_DONE
    )


def _wrk(url: str, script: Path, seconds: float, connections: int) -> dict[str, Any]:
    if WRK is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    threads = min(WRK_THREADS, connections)
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    cmd += ["--latency", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(
            f"wrk failed ({proc.returncode}): {proc.stdout[-400:]} {proc.stderr[-400:]}"
        )
    out: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    out["rate"] = out["requests"] / (out["duration_us"] / 1e6)
    out["errors"] = sum(out[k] for k in ("connect", "read", "write", "status", "timeout"))
    out["connections"] = connections
    out["threads"] = threads
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes, timeout: float = 5.0) -> bytes:
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/ocsp-request"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return bytes(resp.read())


def _wait_post(url: str, body: bytes, proc: subprocess.Popen[bytes], log: Path) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise BenchError(f"the server exited ({proc.returncode}): {log.read_text()[-600:]}")
        try:
            return _post(url, body, timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"no answer from {url}: {log.read_text()[-600:]}") from None
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], *, hard: bool = False) -> None:
    if proc.poll() is None:
        if hard:  # openssl ocsp may be spinning on a half-closed connection (see _LUA_DONE)
            proc.kill()
            proc.wait()
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _check_response(der: bytes, cert: x509.Certificate, who: str) -> ocsp.OCSPResponse:
    resp = ocsp.load_der_ocsp_response(der)
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise BenchError(f"{who} answered {resp.response_status.name}")
    if (
        resp.serial_number != cert.serial_number
        or resp.certificate_status != ocsp.OCSPCertStatus.GOOD
    ):
        raise BenchError(f"{who} did not answer 'good' for the certificate asked about")
    return resp


def _mailseal_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("mailseal")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mailseal"]


def _openssl_index(path: Path, certs: list[x509.Certificate]) -> None:
    with open(path, "w", encoding="ascii") as f:
        for i, c in enumerate(certs):
            serial = f"{c.serial_number:X}"
            serial = ("0" if len(serial) % 2 else "") + serial  # as BN_bn2hex spells it
            expiry = c.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
            f.write(f"V\t{expiry}\t\t{serial}\tunknown\t/emailAddress=ocsp{i}@{DOMAIN}\n")
    path.with_name(path.name + ".attr").write_text("unique_subject = no\n")


def ocsp_http(
    workdir: Path, seconds: float, get_seconds: float, *, n_certs: int = OCSP_CERTS
) -> list[Figure]:
    if WRK is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    base = workdir / "ca-ocsp"
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    authority = _organisation(home)
    try:
        certs = [
            authority.issue(email=f"ocsp{i}@{DOMAIN}", usage="encryption")[0].certificate
            for i in range(n_certs)
        ]
        issuer = authority.cas["issuing"].certificate
        target = certs[n_certs // 2]
        request = (
            ocsp.OCSPRequestBuilder().add_certificate(target, issuer, hashes.SHA1()).build()
        ).public_bytes(serialization.Encoding.DER)
        presigned, _ = authority.ocsp(request)
        ms_resp = _check_response(presigned, target, "mailseal")
    finally:
        authority.close()
    md = _hash_for(issuer)
    ca_pem, ca_key = _openssl_ca_files(home, base / "openssl")
    post_lua = base / "post.lua"
    post_lua.write_text(_lua_post(request))
    get_lua = base / "get.lua"
    get_lua.write_text(_LUA_DONE)
    get_path = urllib.parse.quote(base64.b64encode(request).decode(), safe="")
    warm = min(2.0, seconds)

    # mailseal serve
    port = _free_port()
    url = f"http://127.0.0.1:{port}/ocsp"
    log = base / "serve.log"
    env = {**os.environ, PASSPHRASE_ENV: PASSPHRASE.decode()}
    cmd = [*_mailseal_cmd(), "serve", "--home", str(home), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--passphrase-env", PASSPHRASE_ENV]
    with open(log, "wb") as logf:
        server = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        served = _wait_post(url, request, server, log)
        if served != presigned:
            raise BenchError("mailseal serve did not answer with the pre-signed response")
        with urllib.request.urlopen(f"{url}/{get_path}", timeout=5) as resp:
            if resp.read() != presigned:
                raise BenchError("mailseal serve did not answer the GET with the pre-signed one")
        _wrk(url, post_lua, warm, WRK_CONNECTIONS)
        ms_post = _wrk(url, post_lua, seconds, WRK_CONNECTIONS)
        ms_get = _wrk(f"{url}/{get_path}", get_lua, get_seconds, WRK_CONNECTIONS)
        ms_post_c1 = _wrk(url, post_lua, get_seconds, 1)
    finally:
        _stop(server)

    # openssl ocsp over an index.txt of the same certificates; a fresh process for each wrk run,
    # as connections that wrk leaves half-open when it stops can wedge it (see _LUA_DONE)
    index = base / "openssl" / "index.txt"
    _openssl_index(index, certs)
    ocmd = [OPENSSL, "ocsp", "-index", str(index), "-rsigner", str(ca_pem), "-rkey", str(ca_key)]
    ocmd += ["-CA", str(ca_pem), "-ndays", "4", "-rmd", md, "-resp_key_id", "-resp_no_certs"]
    ocmd += ["-ignore_err"]

    def openssl_run(run_seconds: float, connections: int) -> dict[str, Any]:
        oport = _free_port()
        ourl = f"http://127.0.0.1:{oport}/"
        olog = base / "openssl-ocsp.log"
        with open(olog, "wb") as logf:
            proc = subprocess.Popen(
                [*ocmd, "-port", str(oport)], stdout=logf, stderr=subprocess.STDOUT
            )
        try:
            _check_response(_wait_post(ourl, request, proc, olog), target, "openssl ocsp")
            return _wrk(ourl, post_lua, run_seconds, connections)
        finally:
            _stop(proc, hard=True)

    os_post = openssl_run(seconds, WRK_CONNECTIONS)
    os_post_c1 = openssl_run(get_seconds, 1)

    for who, r in (("mailseal POST", ms_post), ("mailseal GET", ms_get), ("c1", ms_post_c1)):
        if r["errors"]:
            raise BenchError(f"wrk saw {r['errors']} errors against {who}: {r}")
    if os_post_c1["errors"] or not os_post_c1["requests"]:
        raise BenchError(f"wrk -c1 against openssl ocsp failed: {os_post_c1}")
    detail = {
        "certificates": n_certs,
        "ca_key": CA_KEY,
        "request_bytes": len(request),
        "response_bytes": len(presigned),
        "response_signature": ms_resp.signature_algorithm_oid.dotted_string,
        "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{round(seconds)}s --latency",
        "mailseal_post": ms_post,
        "mailseal_get": ms_get,
        "mailseal_post_c1": ms_post_c1,
        "openssl_post": os_post,
        "openssl_post_c1": os_post_c1,
        "server": "mailseal serve: 1 uvicorn process (httptools, uvloop), SQLite",
        "openssl_ocsp": " ".join([*ocmd[1:2], "-index", "…", *ocmd[4:]]),
    }
    ref = "openssl ocsp -index, 1 process, signs each response"
    if os_post["errors"] or not os_post["requests"]:
        ref += f" (wrk: {os_post['errors']} errors)"
    conn = f"wrk -c{WRK_CONNECTIONS}"

    def ms(us: float) -> float:
        return round(us / 1000, 2)

    return [
        Figure(
            "ca-ocsp",
            f"OCSP POST, pre-signed, no nonce, loopback, {conn}",
            ms_post["rate"],
            "op/s",
            ref,
            os_post["rate"],
            Target("value", ">=", 3000, "op/s"),
            detail=detail,
        ),
        Figure(
            "ca-ocsp",
            f"OCSP POST p99 latency, {conn}",
            ms(ms_post["p99_us"]),
            "ms",
            ref,
            ms(os_post["p99_us"]),
            Target("value", "<=", 20, "ms"),
            note=f"p50 {ms(ms_post['p50_us'])} ms, p99.9 {ms(ms_post['p999_us'])} ms; openssl "
            f"p50 {ms(os_post['p50_us'])} ms; wrk does not correct for coordinated omission",
            detail=detail,
        ),
        Figure(
            "ca-ocsp",
            "OCSP POST, one connection (wrk -c1)",
            ms_post_c1["rate"],
            "op/s",
            ref + ", -c1",
            os_post_c1["rate"],
            note=f"p99 {ms(ms_post_c1['p99_us'])} ms, openssl {ms(os_post_c1['p99_us'])} ms",
            detail=detail,
        ),
        Figure(
            "ca-ocsp",
            f"OCSP GET (RFC 6960 A.1), pre-signed, {conn}",
            ms_get["rate"],
            "op/s",
            ref + ", POST",
            os_post["rate"],
            note=f"p99 {ms(ms_get['p99_us'])} ms",
            detail=detail,
        ),
    ]


# -- alone ----------------------------------------------------------------------------------------


def profile_issue(n: int, top: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mailseal-bench-ca-") as tmp:
        authority = _organisation(Path(tmp) / "home")
        for i in range(10):
            authority.issue(email=f"warm{i}@{DOMAIN}", usage="encryption")
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        for i in range(n):
            authority.issue(email=f"user{i}@{DOMAIN}", usage="encryption")
        prof.disable()
        took = time.perf_counter() - start
        authority.close()
    print(f"{n} issuances in {took:.2f} s under cProfile ({n / took:,.0f}/s)\n")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ca", description=__doc__.split("\n")[0])
    p.add_argument(
        "which", nargs="?", default="all", choices=["all", "issue", "ocsp", "profile-issue"]
    )
    p.add_argument("--n", type=int, help=f"certificates to issue (default {ISSUE_N})")
    p.add_argument("--duration", type=float, default=10.0, help="wrk seconds (default 10)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--top", type=int, default=30)
    opts = p.parse_args(argv)
    n = opts.n or (QUICK_ISSUE_N if opts.quick else ISSUE_N)
    if opts.which == "profile-issue":
        profile_issue(n, opts.top)
        return 0
    from bench.cli import render

    seconds = 2.0 if opts.quick else opts.duration
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mailseal-bench-ca-") as tmp:
        if opts.which in ("all", "issue"):
            figures += issuance(Path(tmp), n)
        if opts.which in ("all", "ocsp"):
            figures += ocsp_http(Path(tmp), seconds, max(2.0, seconds / 2))
    print(render(figures, {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
