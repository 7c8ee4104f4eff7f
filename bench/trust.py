"""Verification with full path validation and revocation, from cache (the trust issue's target).

1 KiB messages signed through a three-certificate chain (root, issuing CA, signer) are verified
with revocation in hard-fail mode, offline, against CRLs for both CA levels. The Trust object is
reused, so unchanged chains are validated once and served from its cache; the cache is keyed on
the CRLs, so a changed CRL is a miss. The reference is `openssl cms -verify -crl_check_all`
with the same CRLs (given in its CA file), one process per message.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import mailseal
from bench.common import OPENSSL, BenchError, Figure, Target, measure_rate
from bench.fixtures import Keys, message_1k

POOL = 64


def _crl(
    issuer_cert: x509.Certificate, issuer_key: object, number: int
) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=7))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def _openssl_loop(
    paths: list[Path], root_pem: Path, crl_pem: Path, seconds: float
) -> tuple[float, int]:
    n = 0
    start = time.perf_counter()
    while True:
        p = paths[n % len(paths)]
        # the CA file carries the CRLs too: `openssl cms` has no -CRLfile option
        cmd = [OPENSSL, "cms", "-verify", "-in", str(p), "-CAfile", str(crl_pem)]
        cmd += ["-crl_check_all", "-out", "/dev/null"]
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"openssl cms -verify -crl_check_all failed: {proc.stderr[-400:]!r}")
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 10:
            return n / elapsed, n


def verify_revocation_1k(keys: Keys, seconds: float, workdir: Path) -> list[Figure]:
    pki = keys.pki
    crls = [_crl(pki.root.cert, pki.root.key, 1), _crl(pki.issuer.cert, pki.issuer.key, 1)]
    trust = mailseal.Trust(
        [pki.root.cert],
        crls=crls,
        revocation="hard",
        offline=True,
    )
    signed = [mailseal.sign(message_1k(i), keys.prepared) for i in range(POOL)]
    first = mailseal.verify(signed[0], trust=trust)
    if not first.valid:
        raise BenchError(f"verify with revocation is not VALID: {first.status} {first.signers}")

    def ms_verify(i: int) -> None:
        mailseal.verify(signed[i % POOL], trust=trust)

    r = measure_rate(ms_verify, seconds)

    def ms_verify_new_crls(i: int) -> None:
        # every message against a Trust built anew: path and revocation checked each time
        fresh = mailseal.Trust([pki.root.cert], crls=crls, revocation="hard", offline=True)
        mailseal.verify(signed[i % POOL], trust=fresh)

    cold = measure_rate(ms_verify_new_crls, seconds / 2, rounds=3, warmup=2)

    crl_pem = workdir / "root-and-crls.pem"
    crl_pem.write_bytes(
        keys.root_pem.read_bytes()
        + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls)
    )
    paths = []
    for i, s in enumerate(signed[:16]):
        p = workdir / f"rev-{i}.eml"
        p.write_bytes(s)
        paths.append(p)
    ossl, ossl_n = _openssl_loop(paths, keys.root_pem, crl_pem, seconds)
    ref = "openssl cms -verify -crl_check_all, 1 process per msg"
    return [
        Figure(
            "verify-revocation-1k",
            "verify 1 KiB, 3-cert chain, CRLs hard-fail, from cache",
            r.median,
            "msg/s",
            ref,
            ossl,
            Target("value", ">=", 2000, "msg/s"),
            detail={"mailseal": r.as_json(), "openssl_processes": ossl_n},
        ),
        Figure(
            "verify-revocation-1k",
            "verify 1 KiB, 3-cert chain, CRLs hard-fail, no cache (new Trust per message)",
            cold.median,
            "msg/s",
            ref,
            ossl,
            note="informative: full path validation and CRL checks on every message",
            detail={"mailseal": cold.as_json()},
        ),
    ]
