"""``python -m bench``: run the benchmarks, print the table, write bench/results/*.json."""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import SCHEMA_VERSION, ca, crl, encryption, escrow, large, throughput, trust
from bench.common import MIB, RESULTS, BenchError, Figure, machine_info
from bench.fixtures import Keys, make_keys


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    keys: Keys
    seconds: float
    speed_seconds: int
    large_size: int
    big_size: int
    repeat: int | None
    _baselines: dict[str | None, tuple[int, float]] = field(default_factory=dict)

    def baseline(self, op: str | None = None) -> tuple[int, float]:
        """A fresh interpreter importing mailseal and, with ``op``, loading what it uses."""
        if op not in self._baselines:
            self._baselines[op] = large.baseline(op)
        return self._baselines[op]


@dataclass(frozen=True)
class Bench:
    name: str
    about: str
    run: Callable[[Context], list[Figure]]
    default: bool = True


def _large(variant: str, big: bool) -> Callable[[Context], list[Figure]]:
    def run(ctx: Context) -> list[Figure]:
        size = ctx.big_size if big else ctx.large_size
        need = int(size * 3.2)
        if large.free_bytes(ctx.workdir) < need:
            raise BenchError(f"not enough free space in {ctx.workdir} (need {need >> 20} MiB)")
        name = f"{'big' if big else 'large'}-{variant}"
        repeat = ctx.repeat if ctx.repeat is not None else (1 if big or ctx.args.quick else 3)
        return large.run_variant(
            name, variant, size, ctx.keys, ctx.workdir, ctx.baseline, repeat=repeat
        )

    return run


def _large_encrypt(big: bool) -> Callable[[Context], list[Figure]]:
    def run(ctx: Context) -> list[Figure]:
        size = ctx.big_size if big else ctx.large_size
        # the input, mailseal's and OpenSSL's output (base64: 1.37×), the ciphertext spool of
        # an AES-GCM decryption (in the temporary directory) and some room
        need = int(size * 5.5)
        if large.free_bytes(ctx.workdir) < need:
            raise BenchError(f"not enough free space in {ctx.workdir} (need {need >> 20} MiB)")
        name = f"{'big' if big else 'large'}-encrypt"
        repeat = ctx.repeat if ctx.repeat is not None else (1 if big or ctx.args.quick else 3)
        return encryption.run_large(name, size, ctx.keys, ctx.workdir, ctx.baseline, repeat=repeat)

    return run


def _startup(ctx: Context) -> list[Figure]:
    rss, wall = ctx.baseline()
    return [large.startup_figure(rss, wall)]


BENCHES: tuple[Bench, ...] = (
    Bench(
        "startup", "a fresh interpreter importing mailseal vs a fresh `openssl version`", _startup
    ),
    Bench(
        "sign-1k",
        "1 KiB RSA-2048 sign rate vs openssl speed and pyca PKCS7SignatureBuilder",
        lambda c: throughput.sign_1k(c.keys, c.seconds, c.speed_seconds),
    ),
    Bench(
        "verify-1k",
        "1 KiB verify rate (reused Trust, 3-certificate chain) vs openssl cms -verify",
        lambda c: throughput.verify_1k(c.keys, c.seconds, c.speed_seconds, c.workdir),
    ),
    Bench(
        "verify-revocation-1k",
        "1 KiB verify with path validation and CRL revocation (hard-fail) from cache",
        lambda c: trust.verify_revocation_1k(c.keys, c.seconds, c.workdir),
    ),
    Bench(
        "encrypt-1k",
        "1 KiB encrypt rate to one RSA-2048 recipient (AES-256-GCM + OAEP; CBC + PKCS#1 v1.5)",
        lambda c: encryption.encrypt_1k(c.keys, c.seconds, c.speed_seconds, c.workdir),
    ),
    Bench(
        "decrypt-1k",
        "1 KiB decrypt rate (OAEP and PKCS#1 v1.5) vs openssl speed rsa2048 sign",
        lambda c: encryption.decrypt_1k(c.keys, c.seconds, c.speed_seconds, c.workdir),
    ),
    Bench(
        "large-text", "large text/plain message: sign + verify, wall and RSS", _large("text", False)
    ),
    Bench(
        "large-mixed",
        "large multipart/mixed message with a base64 attachment: sign + verify",
        _large("mixed", False),
    ),
    Bench(
        "large-encrypt",
        "large text/plain message: encrypt + decrypt (AES-256-GCM and -CBC), wall and RSS",
        _large_encrypt(False),
    ),
    Bench(
        "crl",
        "CRL with 1,000,000 revoked entries (100,000 with --quick): generation time and peak "
        "RSS vs openssl ca -gencrl",
        lambda c: crl.crl_generation(
            c.keys.pki.issuer.cert,
            c.keys.pki.issuer.cert_pem,
            c.keys.pki.issuer.key_pem,
            c.workdir,
            crl.QUICK_ENTRIES if c.args.quick else crl.ENTRIES,
        ),
    ),
    Bench(
        "ca-issue",
        "internal CA: issuance with server-side P-256 keys and the SQLite write vs openssl "
        "x509 -req / openssl ca -infiles",
        lambda c: ca.issuance(c.workdir, ca.QUICK_ISSUE_N if c.args.quick else ca.ISSUE_N),
    ),
    Bench(
        "ca-ocsp",
        "internal CA: pre-signed OCSP over HTTP (mailseal serve, wrk) vs openssl ocsp -index",
        lambda c: ca.ocsp_http(c.workdir, 2 if c.args.quick else 10, 2 if c.args.quick else 5),
    ),
    Bench(
        "escrow-archival",
        "key escrow: issuance with archival to an escrow set vs without",
        lambda c: escrow.archival(
            c.workdir, escrow.QUICK_ARCHIVE_N if c.args.quick else escrow.ARCHIVE_N
        ),
    ),
    Bench(
        "escrow-recovery",
        "key escrow: delivering 10 archived keys once the quorum is in vs openssl pkcs12",
        lambda c: escrow.recovery(c.workdir, repeat=1 if c.args.quick else 3),
    ),
    Bench("big-text", "as large-text at 1 GiB (only with --big)", _large("text", True), False),
    Bench("big-mixed", "as large-mixed at 1 GiB (only with --big)", _large("mixed", True), False),
    Bench(
        "big-encrypt", "as large-encrypt at 1 GiB (only with --big)", _large_encrypt(True), False
    ),
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="mailseal benchmarks, each next to its OpenSSL / pyca reference.",
        epilog="benchmarks: "
        + "; ".join(f"{b.name} ({b.about})" for b in BENCHES)
        + ". Details: docs/performance.md",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: short loops, 8 MiB files")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only these benchmarks (comma-separated, globs allowed, repeatable); "
        "naming big-* runs it without --big",
    )
    p.add_argument("--big", action="store_true", help="also run the large benchmarks at 1 GiB")
    p.add_argument(
        "--seconds", type=float, help="duration of each rate loop (default 3, quick 0.5)"
    )
    p.add_argument("--large-mib", type=int, help="size of the large messages (default 100)")
    p.add_argument("--big-mib", type=int, default=1024, help="size with --big (default 1024)")
    p.add_argument(
        "--repeat",
        type=int,
        help="runs per large measurement, fastest kept (default 3; 1 with --quick and for big-*)",
    )
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p.parse_args(argv)


def _select(args: argparse.Namespace) -> list[Bench]:
    if not args.only:
        return [b for b in BENCHES if b.default or (args.big and b.name.startswith("big-"))]
    patterns = [p.strip() for item in args.only for p in item.split(",") if p.strip()]
    chosen = [b for b in BENCHES if any(fnmatch.fnmatch(b.name, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatch(b.name, p) for b in BENCHES)]
    if unknown:
        names = ", ".join(b.name for b in BENCHES)
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; choose from {names}")
    return chosen


# -- output -----------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("msg/s", "sig/s", "op/s"):
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}"


def _ref_unit(f: Figure) -> str:
    if f.unit == "msg/s" and f.reference and f.reference.startswith("openssl speed"):
        return "sig/s"
    return f.unit


def render(figures: list[Figure], errors: dict[str, str]) -> str:
    head = ("benchmark", "mailseal", "reference", "ref. value", "ratio", "target", "")
    rows: list[tuple[str, ...]] = []
    notes: dict[int, str] = {}
    for f in figures:
        r = f.ratio
        ratio = "—" if r is None else (f"{r:.3f}×" if r < 10 else f"{r:.1f}×")
        met = f.met
        verdict = "" if met is None else ("met" if met else "MISSED")
        rows.append(
            (
                f.label,
                _fmt(f.value, f.unit),
                f.reference or "—",
                _fmt(f.ref_value, _ref_unit(f)),
                ratio,
                f.target.describe() if f.target else "(info)",
                verdict,
            )
        )
        if f.note:
            notes[len(rows) - 1] = f.note
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {1, 3, 4}

    def line(r: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [line(head), "  ".join("-" * w for w in widths).rstrip()]
    last_bench = None
    for i, (f, row) in enumerate(zip(figures, rows, strict=True)):
        if last_bench is not None and f.bench != last_bench:
            out.append("")
        last_bench = f.bench
        out.append(line(row))
        if i in notes:
            out.append("    ↳ " + notes[i])
    for name, err in errors.items():
        out.append(f"{name}: FAILED — {err}")
    return "\n".join(out)


def _save(doc: dict[str, Any], stamp: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    path = RESULTS / f"{stamp}.json"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


def _byte_compile() -> None:
    """Byte-compile mailseal's modules, as installing it from a wheel does. In an editable
    checkout under PYTHONDONTWRITEBYTECODE (set on some machines) every process would
    otherwise compile the sources again, about 65 ms per start-up on the reference machine."""
    import compileall

    import mailseal

    compileall.compile_dir(Path(mailseal.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.list:
        for b in BENCHES:
            print(f"{b.name:13} {'' if b.default else '(opt-in) '}{b.about}")
        return 0
    selected = _select(args)
    _byte_compile()
    seconds = args.seconds or (0.5 if args.quick else 3.0)
    speed_seconds = max(1, round(seconds))
    large_mib = args.large_mib or (8 if args.quick else 100)
    started = _dt.datetime.now(_dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    info = machine_info()
    print(
        f"mailseal {info['mailseal']} ({info['git_commit']}"
        f"{', src modified' if info['src_modified'] else ''}) — {started:%Y-%m-%d %H:%M} UTC\n"
        f"{info['nproc']} CPU × {info['cpu']}; {info['openssl_cli']}; "
        f"cryptography {info['cryptography']} on {info['cryptography_openssl']}; "
        f"Python {info['python']}; load {info['loadavg_at_start'][0]:.2f}",
        flush=True,
    )
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mailseal-bench-") as tmp:
        workdir = Path(tmp)
        ctx = Context(
            args=args,
            workdir=workdir,
            keys=make_keys(workdir),
            seconds=seconds,
            speed_seconds=speed_seconds,
            large_size=large_mib * MIB,
            big_size=args.big_mib * MIB,
            repeat=args.repeat,
        )
        for b in selected:
            print(f"… {b.name}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                figures += b.run(ctx)
            except BenchError as exc:
                errors[b.name] = str(exc)
            except Exception as exc:  # report, keep the other benchmarks' figures
                errors[b.name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            timings[b.name] = time.perf_counter() - start
    total = time.perf_counter() - t0
    info["loadavg_at_end"] = list(os.getloadavg())
    print()
    print(render(figures, errors))
    missed = [f for f in figures if f.met is False]
    print(
        f"\n{len(figures)} figures, {sum(f.met is True for f in figures)} targets met, "
        f"{len(missed)} missed; {total:.0f} s; load average {info['loadavg_at_start'][0]:.2f} "
        f"at start, {info['loadavg_at_end'][0]:.2f} at end (the run itself adds about 1)"
    )
    if not args.no_save:
        doc = {
            "schema": SCHEMA_VERSION,
            "started": started.isoformat(),
            "seconds_total": total,
            "argv": sys.argv[1:] if argv is None else argv,
            "settings": {
                "quick": args.quick,
                "rate_seconds": seconds,
                "openssl_speed_seconds": speed_seconds,
                "large_mib": large_mib,
                "big_mib": args.big_mib
                if any(b.name.startswith("big") for b in selected)
                else None,
                "repeat": ctx.repeat or "default (large 3, quick 1, big 1)",
                "benchmarks": [b.name for b in selected],
            },
            "machine": info,
            "bench_seconds": timings,
            "figures": [f.as_json() for f in figures],
            "errors": errors,
        }
        path = _save(doc, stamp)
        print(f"wrote {path.relative_to(RESULTS.parents[1])} and bench/results/latest.json")
    return 1 if errors else 0
