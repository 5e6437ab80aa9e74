"""Time the command line: wall time of a few commands, and what their imports cost.

Each command runs ``--repeats`` times in a fresh interpreter (``python -m pipesl ...``); the
table gives the median and the fastest run. A second table lists the slowest top-level
imports of ``pipesl --help`` and ``pipesl plan edge-campus`` from ``python -X importtime``
(cumulative microseconds, as Python reports them).

Run: ``.venv/bin/python benchmarks/cli_startup.py [--repeats 7]``. Goals (issue 16): ``pipesl
--help`` under 0.4 s, ``pipesl plan edge-campus`` under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("plan", "--help"),
    ("scenarios",),
    ("show", "edge-campus"),
    ("plan", "edge-campus"),
    ("simulate", "edge-campus"),
)
GOALS = {("--help",): 0.4, ("plan", "edge-campus"): 1.0}


def _run(args: tuple[str, ...], *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, *extra, "-m", "pipesl", *args], capture_output=True,
                          text=True, env=env, check=True)


def wall_times(args: tuple[str, ...], repeats: int) -> list[float]:
    """Seconds of ``repeats`` runs of ``pipesl ARGS``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _run(args)
        times.append(time.perf_counter() - started)
    return times


def slowest_imports(args: tuple[str, ...], count: int = 6) -> list[tuple[str, int]]:
    """The ``count`` top-level imports (and pipesl's own modules) with the largest cumulative
    time, from ``python -X importtime``."""
    rows = []
    for line in _run(args, "-X", "importtime").stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name = parts[2].strip()
        depth = (len(parts[2]) - len(parts[2].lstrip()) - 1) // 2
        if depth == 0 or name.startswith("pipesl"):
            rows.append((name, int(parts[1])))
    rows.sort(key=lambda r: -r[1])
    return rows[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"{'command':<32} {'median s':>9} {'fastest s':>10} {'goal':>7}")
    print("-" * 61)
    medians = {}
    for command in COMMANDS:
        times = wall_times(command, args.repeats)
        medians[command] = statistics.median(times)
        goal = f"< {GOALS[command]:g} s" if command in GOALS else ""
        print(f"{'pipesl ' + ' '.join(command):<32} {medians[command]:>9.3f} "
              f"{min(times):>10.3f} {goal:>7}")
    for command in (("--help",), ("plan", "edge-campus")):
        print()
        print(f"slowest imports of `pipesl {' '.join(command)}` (python -X importtime)")
        print(f"{'module':<40} {'cumulative ms':>14}")
        for name, micros in slowest_imports(command):
            print(f"{name:<40} {micros / 1e3:>14.1f}")
    met = all(medians[c] < g for c, g in GOALS.items())
    print()
    print(f"summary: pipesl --help {medians[('--help',)]:.3f} s (goal < 0.4 s), pipesl plan "
          f"edge-campus {medians[('plan', 'edge-campus')]:.3f} s (goal < 1 s), median of "
          f"{args.repeats}: {'goals met' if met else 'GOALS MISSED'}")


if __name__ == "__main__":
    main()
