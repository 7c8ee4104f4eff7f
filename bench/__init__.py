"""mailseal benchmarks: every figure is measured next to its reference in the same run.

Run ``python -m bench`` (or ``make bench``); ``python -m bench --help`` lists the options.
What each benchmark measures is described in ``docs/performance.md``.
"""

from __future__ import annotations

#: Bumped when the layout of ``bench/results/*.json`` changes.
SCHEMA_VERSION = 1
