"""CRL generation at scale: 1,000,000 revoked certificates, time and peak memory.

mailseal builds the CRL with :func:`mailseal.pki.crl.build_crl` in a fresh interpreter (so the
peak RSS is the generation's own), streaming the entries from a generator as it would from
the database. The reference is ``openssl ca -gencrl`` over an ``index.txt`` holding the same
1,000,000 revoked serials, revocation times and reasons, with the same CRL extensions
(authorityKeyIdentifier, issuingDistributionPoint) and the same RSA-2048 CA key. Both results
are checked: the CRL parses, its signature verifies, and it lists every entry.

    python -m bench --only crl            # with the other benchmarks' table and JSON file
    python -m bench.crl [--entries N]     # alone
    python -m bench.crl child CERT KEY OUT N   # the mailseal side (what the parent runs)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from bench.common import OPENSSL, BenchError, Figure, Target, run_measured

ENTRIES = 1_000_000
QUICK_ENTRIES = 100_000
URL = "http://crl.example.org/bench.crl"
# the S/MIME BR reasons, in turn (None: no reasonCode), the same on both sides
_REASONS = (None, "keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged")
_BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _row(i: int) -> tuple[int, dt.datetime, str | None]:
    """The i-th revoked certificate: a 16-octet serial, a time, a reason."""
    serial = (1 << 126) + i * 0x9E3779B97F4A7C15
    return serial, _BASE + dt.timedelta(seconds=17 * i), _REASONS[i % len(_REASONS)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# -- the mailseal side (child process) --------------------------------------------------------


def _child(cert_path: str, key_path: str, out_path: str, n: int) -> dict[str, object]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from mailseal.keys.software import SoftwareKey
    from mailseal.pki.crl import RevokedEntry, build_crl

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    key = SoftwareKey(load_pem_private_key(Path(key_path).read_bytes(), None))  # type: ignore[arg-type]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def entries() -> Iterator[RevokedEntry]:
        for i in range(1, n + 1):
            serial, when, reason = _row(i)
            yield RevokedEntry(serial, when, reason)

    now = _now()
    start = time.perf_counter()
    der = build_crl(
        cert,
        key,
        entries(),
        number=1,
        this_update=now,
        next_update=now + dt.timedelta(days=7),
        idp_url=URL,
    )
    op = time.perf_counter() - start
    Path(out_path).write_bytes(der)
    return {"op_seconds": op, "rss_before_op_kib": before, "bytes": len(der)}


# -- the openssl side ---------------------------------------------------------------------------


def _openssl_ca(workdir: Path, cert_pem: bytes, key_pem: bytes, n: int) -> Path:
    """An ``openssl ca`` directory whose index.txt revokes the same ``n`` certificates."""
    d = workdir / "openssl-ca"
    d.mkdir(exist_ok=True)
    (d / "ca.pem").write_bytes(cert_pem)
    (d / "ca.key").write_bytes(key_pem)
    (d / "crlnumber").write_text("01\n")
    (d / "index.txt.attr").write_text("unique_subject = no\n")
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca = c\n[c]\n"
        f"dir = {d}\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\n"
        "certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nnew_certs_dir = $dir\n"
        "default_md = sha256\ndefault_crl_days = 7\ncrl_extensions = crl_ext\n"
        "[crl_ext]\nauthorityKeyIdentifier = keyid:always\n"
        "issuingDistributionPoint = critical, @idp\n"
        f"[idp]\nfullname = URI:{URL}\nonlyuser = TRUE\n"
    )
    expiry = (_now() + dt.timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
    with open(d / "index.txt", "w", encoding="ascii") as f:
        for i in range(1, n + 1):
            serial, when, reason = _row(i)
            rev = when.strftime("%y%m%d%H%M%SZ") + ("" if reason is None else f",{reason}")
            f.write(f"R\t{expiry}\t{rev}\t{serial:X}\tunknown\t/CN=user{i}\n")
    return d


def _check(path: Path, cert: x509.Certificate, n: int, who: str) -> None:
    crl = x509.load_der_x509_crl(path.read_bytes())
    if not crl.is_signature_valid(cert.public_key()):  # type: ignore[arg-type]
        raise BenchError(f"the CRL made by {who} does not verify")
    if len(crl) != n:
        raise BenchError(f"the CRL made by {who} lists {len(crl)} entries, not {n}")


def crl_generation(
    cert: x509.Certificate, cert_pem: bytes, key_pem: bytes, workdir: Path, n: int
) -> list[Figure]:
    cert_path = workdir / "crl-ca.pem"
    key_path = workdir / "crl-ca.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    ours = workdir / "mailseal.crl"
    argv = [sys.executable, "-m", "bench.crl", "child", str(cert_path), str(key_path), str(ours)]
    ms = run_measured([*argv, str(n)])
    info = json.loads(ms.stdout.decode().strip().splitlines()[-1])
    _check(ours, cert, n, "mailseal")

    ca_dir = _openssl_ca(workdir, cert_pem, key_pem, n)
    theirs = workdir / "openssl.crl"
    ossl = run_measured(
        [
            OPENSSL,
            "ca",
            "-batch",
            "-config",
            str(ca_dir / "ca.cnf"),
            "-gencrl",
            "-out",
            str(ca_dir / "out.pem"),
        ],
        cwd=ca_dir,
    )
    conv = run_measured(
        [OPENSSL, "crl", "-in", str(ca_dir / "out.pem"), "-outform", "DER", "-out", str(theirs)]
    )
    del conv
    _check(theirs, cert, n, "openssl ca")

    name = "crl"
    label = f"CRL, {n:,} entries, RSA-2048"
    ref = "openssl ca -gencrl (same index, 1 process)"
    detail = {
        "entries": n,
        "mailseal_wall_s": ms.wall,
        "mailseal_build_crl_s": info["op_seconds"],
        "mailseal_bytes": info["bytes"],
        "mailseal_rss_before_op_kib": info["rss_before_op_kib"],
        "mailseal_peak_rss_kib": ms.maxrss_kib,
        "openssl_wall_s": ossl.wall,
        "openssl_peak_rss_kib": ossl.maxrss_kib,
        "openssl_bytes": theirs.stat().st_size,
    }
    return [
        Figure(
            name,
            f"{label}: generation, whole process",
            ms.wall,
            "s",
            ref,
            ossl.wall,
            Target("value", "<=", 15, "s") if n >= ENTRIES else None,
            note=f"build_crl alone: {info['op_seconds']:.2f} s (the rest is start-up and import)",
            detail=detail,
        ),
        Figure(
            name,
            f"{label}: peak RSS",
            ms.maxrss_kib / 1024,
            "MiB",
            ref,
            ossl.maxrss_kib / 1024,
            Target("value", "<=", 2048, "MiB") if n >= ENTRIES else None,
            detail=detail,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["child"]:
        cert, key, out, n = args[1:5]
        print(json.dumps(_child(cert, key, out, int(n))))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.crl", description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=ENTRIES)
    opts = p.parse_args(args)
    from bench.cli import render
    from mailseal.pki.testpki import TestPKI

    pki = TestPKI.create("mailseal CRL Bench", key_type="rsa2048")
    with tempfile.TemporaryDirectory(prefix="mailseal-bench-crl-") as tmp:
        figures = crl_generation(
            pki.issuer.cert, pki.issuer.cert_pem, pki.issuer.key_pem, Path(tmp), opts.entries
        )
    print(render(figures, {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
