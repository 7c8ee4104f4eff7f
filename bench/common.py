"""Shared pieces: figures and targets, timing loops, child processes with their peak RSS."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OPENSSL = shutil.which("openssl") or "openssl"
MIB = 1 << 20


class BenchError(Exception):
    """A benchmark could not produce a figure (a tool failed, a signature did not verify)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue: ``on`` is the ratio to the reference or the value itself."""

    on: Literal["ratio", "value"]
    op: Literal[">=", "<="]
    bound: float
    unit: str = ""

    def describe(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        if self.on == "ratio":
            return f"{sign} {self.bound:g}×"
        return f"{sign} {self.bound:,g} {self.unit}".rstrip()

    def met(self, value: float, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None:
            return None
        return x >= self.bound if self.op == ">=" else x <= self.bound


@dataclass(slots=True)
class Figure:
    """One row of the table: a mailseal figure, its reference, the ratio, the target."""

    bench: str  # the benchmark it belongs to (what --only selects)
    label: str
    value: float
    unit: str
    reference: str | None = None
    ref_value: float | None = None
    target: Target | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ref_value is None or self.ref_value == 0:
            return None
        return self.value / self.ref_value

    @property
    def met(self) -> bool | None:
        return self.target.met(self.value, self.ratio) if self.target else None

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = (
            None if self.target is None else {**asdict(self.target), "text": self.target.describe()}
        )
        d["ratio"] = self.ratio
        d["met"] = self.met
        return d


# -- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """Operations per second over several rounds; ``median`` is the figure reported."""

    rounds: tuple[float, ...]
    ops: int
    seconds: float

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    def as_json(self) -> dict[str, Any]:
        return {
            "median_per_s": self.median,
            "rounds_per_s": list(self.rounds),
            "ops": self.ops,
            "seconds": self.seconds,
        }


def measure_rate(
    fn: Callable[[int], None], seconds: float, *, rounds: int = 5, warmup: int = 20
) -> Rate:
    """Call ``fn(i)`` for about ``seconds`` split into ``rounds``; ``i`` counts up from 0."""
    for i in range(warmup):
        fn(i)
    per_round = seconds / rounds
    rates: list[float] = []
    total = 0
    elapsed_total = 0.0
    i = 0
    clock = time.perf_counter
    for _ in range(rounds):
        n = 0
        start = clock()
        deadline = start + per_round
        while True:
            for _ in range(8):  # check the clock every few calls only
                fn(i)
                i += 1
            n += 8
            now = clock()
            if now >= deadline:
                break
        elapsed = now - start
        rates.append(n / elapsed)
        total += n
        elapsed_total += elapsed
    return Rate(tuple(rates), total, elapsed_total)


def interleaved_rates(
    fns: dict[str, Callable[[int], None]], seconds: float, *, rounds: int = 5, warmup: int = 20
) -> dict[str, Rate]:
    """Like :func:`measure_rate` for several functions at once, their rounds taken in turn
    (A B C A B C …), so a burst of load on a shared machine hits all of them alike.
    ``seconds`` is the time per function."""
    per_round = seconds / rounds
    parts: dict[str, list[Rate]] = {name: [] for name in fns}
    for k in range(rounds):
        for name, fn in fns.items():
            parts[name].append(
                measure_rate(fn, per_round, rounds=1, warmup=warmup if k == 0 else 2)
            )
    return {
        name: Rate(
            tuple(r.rounds[0] for r in rs),
            sum(r.ops for r in rs),
            sum(r.seconds for r in rs),
        )
        for name, rs in parts.items()
    }


# -- child processes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcResult:
    wall: float  # seconds, from fork to reaping
    maxrss_kib: int  # peak resident set of that one child (Linux: KiB)
    stdout: bytes
    stderr: bytes
    returncode: int


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(argv: Sequence[str], *, cwd: Path | None = None, check: bool = True) -> ProcResult:
    """Run ``argv`` and return its wall time and its own peak RSS.

    Linux carries a process's peak RSS across exec, and a child spawned from this (large)
    interpreter starts with the parent's: its ``ru_maxrss`` would never be smaller than ours.
    So the command runs under ``/usr/bin/time``, a small process, and its figure is read
    from there; without it, ``os.wait4`` gives an upper bound that includes our own size.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as tm,
    ):
        full = [TIME, "-f", "%M", "-o", tm.name, *argv] if TIME else list(argv)
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        maxrss = int(usage.ru_maxrss)
        if TIME:
            lines = [ln for ln in tm.read().splitlines() if ln.strip()]
            # on failure GNU time writes "Command exited with non-zero status N" first
            if lines and lines[-1].strip().isdigit():
                maxrss = int(lines[-1])
        res = ProcResult(wall, maxrss, out.read(), err.read(), proc.returncode)
    if check and res.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[:4])} … exited with {res.returncode}: "
            + res.stderr.decode(errors="replace").strip()[-800:]
        )
    return res


def python_child(*args: str) -> list[str]:
    """argv running ``bench._child`` in a fresh interpreter of this venv."""
    return [sys.executable, "-m", "bench._child", *args]


# -- the machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    import mailseal

    openssl = subprocess.run([OPENSSL, "version"], capture_output=True, text=True, check=False)
    dirty = _git("status", "--porcelain", "--", "src")
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "openssl_cli": openssl.stdout.strip(),
        "cryptography": cryptography.__version__,
        "cryptography_openssl": backend.openssl_version_text(),
        "mailseal": mailseal.__version__,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "src_modified": bool(dirty) if dirty is not None else None,
        "loadavg_at_start": list(os.getloadavg()),
    }
