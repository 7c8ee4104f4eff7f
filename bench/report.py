"""Render a results file as a Markdown table (for docs/performance.md).

python -m bench.report [bench/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS


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


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    command = " ".join(["python -m bench", *doc["argv"]])
    lines = [
        f"Run {doc['started'][:16].replace('T', ' ')} UTC, `{command}`",
        f"({doc['seconds_total']:.0f} s; {m['nproc']} × {m['cpu']}; {m['openssl_cli']}; "
        f"cryptography {m['cryptography']} on {m['cryptography_openssl']}; "
        f"Python {m['python']}; mailseal {m['mailseal']} at {m['git_commit']}"
        f"{' + uncommitted src changes' if m.get('src_modified') else ''}; "
        f"load average {m['loadavg_at_start'][0]:.2f} at start).",
        "",
        "| benchmark | mailseal | reference | ref. value | ratio | target | |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for f in doc["figures"]:
        unit = f["unit"]
        ref_unit = (
            "sig/s"
            if unit == "msg/s" and (f["reference"] or "").startswith("openssl speed")
            else unit
        )
        r = f["ratio"]
        ratio = "—" if r is None else (f"{r:.3f}×" if r < 10 else f"{r:.1f}×")
        target = f["target"]["text"] if f["target"] else "(info)"
        met = "" if f["met"] is None else ("met" if f["met"] else "**missed**")
        note = f" — {f['note']}" if f.get("note") else ""
        lines.append(
            f"| {f['label']}{note} | {_fmt(f['value'], unit)} | {f['reference'] or '—'} | "
            f"{_fmt(f['ref_value'], ref_unit)} | {ratio} | {target} | {met} |"
        )
    for name, err in doc.get("errors", {}).items():
        lines.append(f"| {name} | failed: {err} | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS / "latest.json"
    print(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
