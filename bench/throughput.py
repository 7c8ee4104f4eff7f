"""Small messages in process: 1 KiB, RSA-2048, sign and verify rates.

References measured in the same run:

* ``openssl speed -seconds N rsa2048`` — OpenSSL's raw RSA-2048 sign rate (no CMS, no MIME),
* pyca/cryptography's ``PKCS7SignatureBuilder`` producing the same kind of detached S/MIME
  message from the same bytes, in this process,
* ``openssl cms -verify``, one process per message (what a shell loop or a milter that
  shells out pays), over messages signed by mailseal.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

import mailseal
from bench.common import OPENSSL, BenchError, Figure, Target, interleaved_rates, measure_rate
from bench.fixtures import Keys, message_1k

POOL = 64  # distinct messages cycled through, so nothing per-message can be cached


_SPEED_RUNS: list[tuple[float, float]] = []


def openssl_speed_rsa2048(seconds: int) -> tuple[float, float]:
    """(sign/s, verify/s) from one ``openssl speed -mr -seconds N rsa2048``."""
    proc = subprocess.run(
        [OPENSSL, "speed", "-mr", "-seconds", str(seconds), "rsa2048"],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        # +F2:<n>:<bits>:<sign/s>:<verify/s>
        if line.startswith("+F2:"):
            parts = line.split(":")
            if parts[2] == "2048":
                return float(parts[3]), float(parts[4])
    raise BenchError(f"cannot read `openssl speed` output: {proc.stdout[-400:]}{proc.stderr}")


def speed_reference(seconds: int, runs: int) -> tuple[float, float, list[tuple[float, float]]]:
    """Mean (sign/s, verify/s) over the first ``runs`` runs of ``openssl speed`` in this
    process, running more as needed: the benchmarks take one before and one after their own
    loops, so a change in machine load hits both sides."""
    while len(_SPEED_RUNS) < runs:
        _SPEED_RUNS.append(openssl_speed_rsa2048(seconds))
    used = _SPEED_RUNS[:runs]
    return (
        statistics.mean(r[0] for r in used),
        statistics.mean(r[1] for r in used),
        list(used),
    )


def speed_before(seconds: int) -> int:
    """Index of the ``openssl speed`` run that stands "before" a benchmark's loops: the most
    recent one of this process (taken just after the previous benchmark's loops) or, when there
    is none yet, a fresh one. Pair with :func:`speed_after`."""
    if not _SPEED_RUNS:
        _SPEED_RUNS.append(openssl_speed_rsa2048(seconds))
    return len(_SPEED_RUNS) - 1


def speed_after(seconds: int, before: int) -> tuple[float, float, list[tuple[float, float]]]:
    """A fresh ``openssl speed`` run after the loops; mean (sign/s, verify/s) of it and run
    ``before``, and the two runs."""
    _SPEED_RUNS.append(openssl_speed_rsa2048(seconds))
    used = [_SPEED_RUNS[before], _SPEED_RUNS[-1]]
    return (
        statistics.mean(r[0] for r in used),
        statistics.mean(r[1] for r in used),
        used,
    )


def unstable_note(runs: list[tuple[float, float]], column: int = 0) -> str:
    """A warning when the ``openssl speed`` runs around the loops differ by more than 10 %."""
    values = [r[column] for r in runs]
    lo, hi = min(values), max(values)
    if hi > lo * 1.10:
        what = "sig/s" if column == 0 else "verify/s"
        return (
            f"UNSTABLE reference ({lo:,.0f} vs {hi:,.0f} {what} before/after): is the machine busy?"
        )
    return ""


def sign_1k(keys: Keys, seconds: float, speed_seconds: int) -> list[Figure]:
    msgs = [message_1k(i) for i in range(POOL)]
    prepared = keys.prepared
    ident = keys.identity

    def ms_prepared(i: int) -> None:
        mailseal.sign(msgs[i % POOL], prepared)

    def ms_identity(i: int) -> None:
        mailseal.sign(msgs[i % POOL], ident)

    def ms_opaque(i: int) -> None:
        mailseal.sign(msgs[i % POOL], prepared, opaque=True)

    key = keys.user.key
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = keys.user.cert
    pkcs1 = padding.PKCS1v15()
    sha256 = hashes.SHA256()
    attrs_like = [m[:200] for m in msgs]  # about the size of the signed attributes

    def primitive(i: int) -> None:
        key.sign(attrs_like[i % POOL], pkcs1, sha256)

    opts = [pkcs7.PKCS7Options.DetachedSignature]

    def pyca(i: int) -> None:
        (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(msgs[i % POOL])
            .add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.SMIME, opts)
        )

    # sanity: what we time verifies
    res = mailseal.verify(mailseal.sign(msgs[0], prepared), trust=keys.trust())
    if not res.valid:
        raise BenchError(f"mailseal's own 1 KiB signature does not verify: {res.status}")

    speed_reference(speed_seconds, 1)
    # rounds taken in turn, so that a burst of load on a shared machine hits mailseal, pyca
    # and the bare RSA operation alike
    rates = interleaved_rates(
        {"prepared": ms_prepared, "pyca": pyca, "opaque": ms_opaque, "primitive": primitive},
        seconds,
    )
    r_prep, r_pyca, r_opaque, r_prim = (
        rates[k] for k in ("prepared", "pyca", "opaque", "primitive")
    )
    r_ident = measure_rate(ms_identity, seconds / 2, rounds=3)
    ossl_sign, _ossl_verify, speed_runs = speed_reference(speed_seconds, 2)
    speed_ref = f"openssl speed rsa2048 sign (2×{speed_seconds} s)"
    unstable = unstable_note(speed_runs)
    return [
        Figure(
            "sign-1k",
            "sign 1 KiB detached, PreparedSigner",
            r_prep.median,
            "msg/s",
            speed_ref,
            ossl_sign,
            Target("ratio", ">=", 0.80),
            note=unstable,
            detail={"mailseal": r_prep.as_json(), "openssl_speed_runs": speed_runs},
        ),
        Figure(
            "sign-1k",
            "sign 1 KiB detached, PreparedSigner",
            r_prep.median,
            "msg/s",
            "pyca PKCS7SignatureBuilder SMIME detached",
            r_pyca.median,
            Target("ratio", ">=", 3.0),
            detail={"mailseal": r_prep.as_json(), "pyca": r_pyca.as_json()},
        ),
        Figure(
            "sign-1k",
            "sign 1 KiB detached, Identity (prepared per call)",
            r_ident.median,
            "msg/s",
            speed_ref,
            ossl_sign,
            note="informative: the cost of not reusing a PreparedSigner",
            detail={"mailseal": r_ident.as_json()},
        ),
        Figure(
            "sign-1k",
            "sign 1 KiB opaque, PreparedSigner",
            r_opaque.median,
            "msg/s",
            speed_ref,
            ossl_sign,
            note="informative",
            detail={"mailseal": r_opaque.as_json()},
        ),
        Figure(
            "sign-1k",
            "RSA-2048 sign primitive via cryptography",
            r_prim.median,
            "sig/s",
            speed_ref,
            ossl_sign,
            note="informative: the ceiling for any Python code on cryptography's OpenSSL",
            detail={"primitive": r_prim.as_json()},
        ),
    ]


def _openssl_verify_loop(paths: list[Path], root_pem: Path, seconds: float) -> tuple[float, int]:
    """messages/s of ``openssl cms -verify`` run once per message, for about ``seconds``."""
    n = 0
    start = time.perf_counter()
    while True:
        p = paths[n % len(paths)]
        proc = subprocess.run(
            [
                OPENSSL,
                "cms",
                "-verify",
                "-in",
                str(p),
                "-CAfile",
                str(root_pem),
                "-out",
                "/dev/null",
            ],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(
                f"openssl cms -verify failed on {p.name}: {proc.stderr.decode()[-400:]}"
            )
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 10:
            return n / elapsed, n


def verify_1k(keys: Keys, seconds: float, speed_seconds: int, workdir: Path) -> list[Figure]:
    trust = keys.trust()
    signed = [mailseal.sign(message_1k(i), keys.prepared) for i in range(POOL)]
    opaque = [mailseal.sign(message_1k(i), keys.prepared, opaque=True) for i in range(POOL)]
    for s in (signed[0], opaque[0]):
        res = mailseal.verify(s, trust=trust)
        if not res.valid:
            raise BenchError(f"1 KiB verify is not VALID: {res.status} {res.signers}")

    def ms_verify(i: int) -> None:
        mailseal.verify(signed[i % POOL], trust=trust)

    def ms_verify_opaque(i: int) -> None:
        mailseal.verify(opaque[i % POOL], trust=trust)

    def ms_verify_cold(i: int) -> None:
        mailseal.verify(signed[i % POOL], trust=keys.trust())

    r = measure_rate(ms_verify, seconds)
    r_opaque = measure_rate(ms_verify_opaque, seconds / 2, rounds=3)
    r_cold = measure_rate(ms_verify_cold, seconds / 2, rounds=3, warmup=2)

    paths = []
    for i, s in enumerate(signed[:16]):
        p = workdir / f"small-{i}.eml"
        p.write_bytes(s)
        paths.append(p)
    ossl_rate, ossl_n = _openssl_verify_loop(paths, keys.root_pem, seconds)
    loop_ref = "openssl cms -verify, 1 process per msg"
    _sign, ossl_rsa_verify, speed_runs = speed_reference(speed_seconds, 2)
    return [
        Figure(
            "verify-1k",
            "verify 1 KiB detached, reused Trust",
            r.median,
            "msg/s",
            loop_ref,
            ossl_rate,
            Target("value", ">=", 5000, "msg/s"),
            detail={"mailseal": r.as_json(), "openssl_processes": ossl_n},
        ),
        Figure(
            "verify-1k",
            "verify 1 KiB detached, reused Trust",
            r.median,
            "msg/s",
            f"openssl speed rsa2048 verify (2×{speed_seconds} s)",
            ossl_rsa_verify,
            note="informative: raw RSA verifications/s; a cached chain leaves one per message",
            detail={"openssl_speed_runs": speed_runs},
        ),
        Figure(
            "verify-1k",
            "verify 1 KiB opaque, reused Trust",
            r_opaque.median,
            "msg/s",
            loop_ref,
            ossl_rate,
            note="informative",
            detail={"mailseal": r_opaque.as_json()},
        ),
        Figure(
            "verify-1k",
            "verify 1 KiB detached, new Trust per msg",
            r_cold.median,
            "msg/s",
            loop_ref,
            ossl_rate,
            note="informative: path validation on every message",
            detail={"mailseal": r_cold.as_json()},
        ),
    ]
