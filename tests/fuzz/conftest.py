"""Fuzz-run reporting: the table of input classes and how their cases ended.

After a run that includes ``tests/fuzz``, pytest prints ``class -> cases -> outcomes``. With
``PIPESL_FUZZ_TALLY=<file>`` the same tally is written as JSON (``benchmarks/fuzz_report.py``
reads it).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from harness import TALLY, dump_tally


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="long fuzz run: select it with -m slow")
    for item in items:
        if item.get_closest_marker("slow") and "tests/fuzz/" in item.nodeid.replace("\\", "/"):
            item.add_marker(skip)


def format_table(tally: dict[str, dict[str, int]]) -> list[str]:
    """The tally as aligned text lines."""
    rows = [(cls, sum(outcomes.values()),
             ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])))
            for cls, outcomes in sorted(tally.items())]
    width = max([len(r[0]) for r in rows] + [5])
    lines = [f"{'class':<{width}}  {'cases':>6}  how they ended", "-" * (width + 60)]
    lines += [f"{cls:<{width}}  {n:>6}  {how}" for cls, n, how in rows]
    lines.append(f"{'total':<{width}}  {sum(r[1] for r in rows):>6}")
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.section("fuzz cases per class of hostile input")
    for line in format_table({k: dict(v) for k, v in TALLY.items()}):
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: Any) -> None:
    path = os.environ.get("PIPESL_FUZZ_TALLY")
    if path and TALLY:
        dump_tally(path)
