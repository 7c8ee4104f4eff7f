"""Large messages, one fresh process per operation: wall time and peak RSS against OpenSSL.

For each input (text/plain 7bit prose, or multipart/mixed with a base64 attachment) and each
form (detached multipart/signed, opaque pkcs7-mime):

* sign: ``python -m bench._child sign`` (mailseal.sign_stream, file to file) against
  ``openssl cms -sign -binary -stream [-nodetach] -in F -signer C -inkey K -certfile CHAIN``;
* verify: ``python -m bench._child verify`` (mailseal.verify_stream, content to /dev/null)
  against ``openssl cms -verify -binary [-crlfeol] -in O -CAfile ROOT -out /dev/null``, both
  on the message mailseal signed, both validating the full chain to the root (OpenSSL with its
  default purpose, smimesign: no ``-noverify``, no ``-purpose any``). ``-crlfeol`` is added for
  the detached form: with ``-binary`` alone OpenSSL splits multipart/signed at LF and keeps the
  CR of the last content line, so CRLF mail (which RFC 8551 requires) fails to verify.

Wall time is the whole process, fork to exit, on both sides (mailseal's includes starting
Python and importing mailseal; the time of the library call alone is kept in the details).
Peak RSS comes from ``os.wait4`` per child; mailseal's is reported over the peak RSS of an
interpreter that only imported mailseal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    MIB,
    OPENSSL,
    ROOT,
    BenchError,
    Figure,
    ProcResult,
    Target,
    python_child,
    run_measured,
)
from bench.fixtures import Keys, write_large_mixed, write_large_text

VARIANTS: dict[str, tuple[str, Callable[[Path, int], int]]] = {
    "text": ("text/plain 7bit", write_large_text),
    "mixed": ("multipart/mixed + base64 attachment", write_large_mixed),
}
RSS_TARGET_MIB = 64


def _size_label(size: int) -> str:
    if size >= 1 << 30 and size % (1 << 30) == 0:
        return f"{size >> 30} GiB"
    return f"{size / MIB:g} MiB"


def baseline(op: str | None = None, repeat: int = 3) -> tuple[int, float]:
    """(peak RSS KiB, wall s) of an interpreter that only imports mailseal and, with ``op``,
    loads what that operation of ``bench._child`` uses (lowest of ``repeat``: the baseline is
    subtracted, so the lowest is the conservative choice)."""
    argv = python_child("baseline", *([op] if op else []))
    runs = [run_measured(argv, cwd=_cwd()) for _ in range(repeat)]
    return min(r.maxrss_kib for r in runs), min(r.wall for r in runs)


def startup_figure(base_rss_kib: int, base_wall: float) -> Figure:
    """What every process-level figure below carries: starting Python and importing mailseal."""
    ref = min((run_measured([OPENSSL, "version"]) for _ in range(3)), key=lambda r: r.wall)
    return Figure(
        "startup",
        "start-up: python + import mailseal",
        base_wall,
        "s",
        "openssl version",
        ref.wall,
        note=f"informative; peak RSS {base_rss_kib / 1024:.1f} MiB vs "
        f"{ref.maxrss_kib / 1024:.1f} MiB",
        detail={"baseline_maxrss_kib": base_rss_kib, "openssl_maxrss_kib": ref.maxrss_kib},
    )


def _cwd() -> Path:
    return ROOT


def _child_json(res: ProcResult) -> dict[str, object]:
    lines = res.stdout.decode().strip().splitlines()
    if not lines:
        raise BenchError("the mailseal child printed nothing")
    out: dict[str, object] = json.loads(lines[-1])
    return out


def _best(runs: list[ProcResult]) -> ProcResult:
    """The fastest run's wall time with the highest peak RSS of all runs."""
    fastest = min(runs, key=lambda r: r.wall)
    return ProcResult(
        fastest.wall,
        max(r.maxrss_kib for r in runs),
        fastest.stdout,
        fastest.stderr,
        fastest.returncode,
    )


def run_variant(
    name: str,
    variant: str,
    size: int,
    keys: Keys,
    workdir: Path,
    baseline: Callable[[str], tuple[int, float]],
    *,
    repeat: int = 1,
) -> list[Figure]:
    """``baseline(op)``: the (peak RSS KiB, wall s) the RSS figures of ``op`` are over."""
    what, writer = VARIANTS[variant]
    src = workdir / f"{name}-{variant}.eml"
    actual = writer(src, size)
    label = f"{_size_label(size)} {variant}"
    figures: list[Figure] = []
    try:
        for opaque in (False, True):
            figures += _one_form(
                name, label, what, src, actual, opaque, keys, workdir, baseline, repeat,
            )  # fmt: skip
    finally:
        src.unlink(missing_ok=True)
    return figures


def _one_form(
    name: str,
    label: str,
    what: str,
    src: Path,
    actual: int,
    opaque: bool,
    keys: Keys,
    workdir: Path,
    baseline: Callable[[str], tuple[int, float]],
    repeat: int,
) -> list[Figure]:
    form = "opaque" if opaque else "detached"
    ms_out = workdir / f"{src.stem}-{form}.mailseal"
    ossl_out = workdir / f"{src.stem}-{form}.openssl"
    ossl_sign_argv = [
        OPENSSL, "cms", "-sign", "-binary", "-stream", "-in", str(src),
        "-signer", str(keys.cert_pem), "-inkey", str(keys.key_pem),
        "-certfile", str(keys.chain_pem), "-out", str(ossl_out),
    ]  # fmt: skip
    if opaque:
        ossl_sign_argv.append("-nodetach")
    ms_sign_argv = python_child(
        "sign", str(src), str(ms_out), str(keys.cert_pem), str(keys.key_pem), str(keys.chain_pem)
    )
    if opaque:
        ms_sign_argv.append("--opaque")
    ossl_verify_argv = [
        OPENSSL, "cms", "-verify", "-binary", "-in", str(ms_out),
        "-CAfile", str(keys.root_pem), "-out", "/dev/null",
    ]  # fmt: skip
    if not opaque:
        # with -binary alone, OpenSSL splits multipart/signed at LF and keeps the CR of the
        # last content line, so a CRLF message (as RFC 8551 requires) fails; -crlfeol makes
        # it split at CRLF. mailseal's output is CRLF throughout.
        ossl_verify_argv.insert(4, "-crlfeol")
    ms_verify_argv = python_child("verify", str(ms_out), str(keys.root_pem), "/dev/null")

    cwd = _cwd()
    o_sign: list[ProcResult] = []
    m_sign: list[ProcResult] = []
    # each run writes a new file: replacing one the size of the message costs its writer the
    # time to free the old one (about 20 ms at 100 MiB), and neither side should pay that
    for _ in range(repeat):
        o_sign.append(run_measured(ossl_sign_argv))
        ossl_out.unlink(missing_ok=True)
        ms_out.unlink(missing_ok=True)
        m_sign.append(run_measured(ms_sign_argv, cwd=cwd))
    signed_size = ms_out.stat().st_size
    o_ver: list[ProcResult] = []
    m_ver: list[ProcResult] = []
    try:
        for _ in range(repeat):
            o_ver.append(run_measured(ossl_verify_argv))
            m_ver.append(run_measured(ms_verify_argv, cwd=cwd))
    finally:
        ms_out.unlink(missing_ok=True)
    ms, os_, mv, ov = _best(m_sign), _best(o_sign), _best(m_ver), _best(o_ver)
    ms_info = _child_json(ms)
    mv_info = _child_json(mv)
    if mv_info.get("status") != "valid":
        raise BenchError(
            f"mailseal did not find its {label} {form} signature valid: {mv_info.get('status')} "
            f"{mv_info.get('problems')}"
        )
    mib = actual / MIB
    s_base, v_base = baseline("sign"), baseline("verify")

    def detail(
        m: ProcResult, o: ProcResult, info: dict[str, object], base: tuple[int, float]
    ) -> dict[str, object]:
        op = float(info["op_seconds"])  # type: ignore[arg-type]
        return {
            "input_bytes": actual,
            "signed_bytes": signed_size,
            "mailseal_wall_s": m.wall,
            "mailseal_op_s": op,
            "mailseal_op_mib_per_s": mib / op if op else None,
            "mailseal_maxrss_kib": m.maxrss_kib,
            "mailseal_rss_before_op_kib": info.get("rss_before_op_kib"),
            "baseline_maxrss_kib": base[0],
            "baseline_wall_s": base[1],
            "openssl_wall_s": o.wall,
            "openssl_maxrss_kib": o.maxrss_kib,
            "repeat": repeat,
        }

    s_detail = detail(ms, os_, ms_info, s_base)
    v_detail = detail(mv, ov, mv_info, v_base)
    s_op = float(ms_info["op_seconds"])  # type: ignore[arg-type]
    v_op = float(mv_info["op_seconds"])  # type: ignore[arg-type]
    rss_target = Target("value", "<=", RSS_TARGET_MIB, "MiB")
    return [
        Figure(
            name,
            f"sign {label} {form}: wall",
            ms.wall,
            "s",
            "openssl cms -sign -binary -stream" + (" -nodetach" if opaque else ""),
            os_.wall,
            Target("ratio", "<=", 1.0),
            note=f"call alone {s_op:.2f} s ({mib / s_op:.0f} MiB/s); {what}",
            detail=s_detail,
        ),
        Figure(
            name,
            f"sign {label} {form}: peak RSS over baseline",
            (ms.maxrss_kib - s_base[0]) / 1024,
            "MiB",
            "openssl cms -sign peak RSS",
            os_.maxrss_kib / 1024,
            rss_target,
            detail=s_detail,
        ),
        Figure(
            name,
            f"verify {label} {form}: wall",
            mv.wall,
            "s",
            "openssl cms -verify -binary" + ("" if opaque else " -crlfeol"),
            ov.wall,
            Target("ratio", "<=", 1.0),
            note=f"call alone {v_op:.2f} s ({mib / v_op:.0f} MiB/s)",
            detail=v_detail,
        ),
        Figure(
            name,
            f"verify {label} {form}: peak RSS over baseline",
            (mv.maxrss_kib - v_base[0]) / 1024,
            "MiB",
            "openssl cms -verify peak RSS",
            ov.maxrss_kib / 1024,
            rss_target,
            detail=v_detail,
        ),
    ]


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
