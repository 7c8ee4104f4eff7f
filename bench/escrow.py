"""Key escrow: what archival adds to issuance, and how long a recovery takes once the quorum is
in.

- **archival**: issuing encryption certificates (server-side P-256 keys, SQLite) under an
  organisation with an escrow set, beside the same under one without; the difference per
  certificate is the cost of sealing the key to the escrow set in the issuance transaction.
  Target (issue 6): ≤ 2 ms per certificate. The two runs alternate in rounds so that a noisy
  machine affects both alike.
- **recovery**: a person with 10 archived keys, a request with 2 of 3 approvals in; the time of
  ``deliver`` (unlock the delivery key with the requester's password — Argon2id at the default
  cost —, open and check each officer's partials, combine, decrypt the 10 keys, write one
  PKCS#12 with PBKDF2 at 600,000 iterations). Target: ≤ 1 s. The reference is ``openssl
  pkcs12 -export`` of one key and certificate at the same PBKDF2 cost, the floor that any
  PKCS#12 under this password hardening pays.

``python -m bench.escrow [archival|recovery] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, Target

DOMAIN = "example.org"
PASSPHRASE = b"bench escrow passphrase"
REQUESTER = b"bench requester password"
ARCHIVE_N = 200
QUICK_ARCHIVE_N = 60
ROUNDS = 5
RECOVER_KEYS = 10


def _organisation(home: Path) -> Any:
    from mailseal.config import Settings
    from mailseal.lifecycle.authority import Secrets, init_organisation

    settings = Settings(home=home, organization="Bench Escrow", domains=(DOMAIN,))
    return init_organisation(settings, Secrets(passphrase=PASSPHRASE), key_type="p256")


def _officers() -> list[tuple[str, bytes]]:
    return [(n, f"{n} share passphrase".encode()) for n in ("ann", "bo", "cy")]


def _issue_seconds(authority: Any, n: int, tag: str) -> float:
    start = time.perf_counter()
    for i in range(n):
        authority.issue(email=f"{tag}{i}@{DOMAIN}", usage="encryption")
    return (time.perf_counter() - start) / n


def archival(workdir: Path, n: int = ARCHIVE_N, rounds: int = ROUNDS) -> list[Figure]:
    from mailseal.escrow.protect import KdfCost

    plain = _organisation(workdir / "plain")
    escrowed = _organisation(workdir / "escrowed")
    try:
        # the share files' KDF cost plays no part in archival: keep set-up quick
        escrowed.init_escrow(2, _officers(), cost=KdfCost(1, 8 << 20))
        for org in (plain, escrowed):
            _issue_seconds(org, 10, "warm")
        with_escrow, without = [], []
        for r in range(rounds):
            without.append(_issue_seconds(plain, n, f"r{r}u"))
            with_escrow.append(_issue_seconds(escrowed, n, f"r{r}u"))
        with escrowed.db.session(readonly=True) as s:
            from mailseal.store import EscrowRecord, repo

            archived = repo.count_rows(s, EscrowRecord)
    finally:
        plain.close()
        escrowed.close()
    base = statistics.median(without)
    cost = statistics.median(with_escrow)
    added_ms = (cost - base) * 1000
    return [
        Figure(
            "escrow-archival",
            "archival added to one issuance",
            round(added_ms, 3),
            "ms",
            reference="issuance without escrow",
            ref_value=round(base * 1000, 3),
            target=Target("value", "<=", 2.0, "ms"),
            note=f"{n} encryption certificates × {rounds} rounds each; medians "
            f"{base * 1000:.2f} ms vs {cost * 1000:.2f} ms; {archived} keys archived",
            detail={
                "without_ms": [x * 1000 for x in without],
                "with_ms": [x * 1000 for x in with_escrow],
            },
        )
    ]


def recovery(workdir: Path, keys: int = RECOVER_KEYS, repeat: int = 3) -> list[Figure]:
    from mailseal.lifecycle import escrow as esc

    authority = _organisation(workdir / "recovery")
    try:
        files = dict(authority.init_escrow(2, _officers()))
        email = f"leaver@{DOMAIN}"
        authority.issue(email=email, usage="encryption")
        for _ in range(keys - 1):
            authority.renew(email=email)
        times, stages = [], []
        for _ in range(repeat):
            view = esc.request_recovery(
                authority,
                email=email,
                serials=None,
                reason="benchmark",
                password=REQUESTER,
                requester="bench",
            )
            for name in ("ann", "cy"):
                phrase = f"{name} share passphrase".encode()
                esc.approve(authority, view.request_id, files[name], passphrase=phrase)
            out: list[bytes] = []
            start = time.perf_counter()
            esc.deliver(authority, view.request_id, REQUESTER, out.append)
            times.append(time.perf_counter() - start)
            stages.append(len(out[0]))
        assert len(view.serials) == keys
        ref = _openssl_pkcs12(workdir, authority)
    finally:
        authority.close()
    best = min(times)
    return [
        Figure(
            "escrow-recovery",
            f"deliver {keys} archived keys as one PKCS#12",
            round(best, 3),
            "s",
            reference="openssl pkcs12 -export, 1 key, same PBKDF2 cost",
            ref_value=round(ref, 3) if ref else None,
            target=Target("value", "<=", 1.0, "s"),
            note=f"best of {repeat}; includes the Argon2id unlock of the delivery key "
            f"(3 passes, 256 MiB) and PBKDF2 at 600,000 iterations; {stages[0]:,} bytes",
            detail={"seconds": times},
        )
    ]


def _openssl_pkcs12(workdir: Path, authority: Any) -> float | None:
    """``openssl pkcs12 -export`` of one fresh key and certificate at 600,000 iterations."""
    from cryptography.hazmat.primitives import serialization

    issued = authority.issue(email=f"ref@{DOMAIN}", usage="encryption")[0]
    key = workdir / "ref.key"
    cert = workdir / "ref.crt"
    key.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    env = {**os.environ, "BENCH_P12": REQUESTER.decode()}
    cmd = ["openssl", "pkcs12", "-export", "-inkey", str(key), "-in", str(cert),
           "-out", str(workdir / "ref.p12"), "-passout", "env:BENCH_P12", "-iter", "600000",
           "-macalg", "sha256", "-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC"]  # fmt: skip
    best = None
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            return None
        best = took if best is None else min(best, took)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.escrow", description=__doc__.split("\n")[0])
    p.add_argument("which", nargs="?", default="all", choices=["all", "archival", "recovery"])
    p.add_argument("--quick", action="store_true")
    opts = p.parse_args(argv)
    from bench.cli import render

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mailseal-bench-escrow-") as tmp:
        if opts.which in ("all", "archival"):
            figures += archival(Path(tmp), QUICK_ARCHIVE_N if opts.quick else ARCHIVE_N,
                                3 if opts.quick else ROUNDS)  # fmt: skip
        if opts.which in ("all", "recovery"):
            figures += recovery(Path(tmp), repeat=1 if opts.quick else 3)
    print(render(figures, {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
