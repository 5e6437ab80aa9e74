"""The full test run of ``make test``: two pytest runs, one verdict.

1. every test without the ``distributed`` marker, on ``--workers`` pytest-xdist workers, a
   file per worker (``--dist loadfile``: module fixtures stay shared; ``tests/conftest.py``
   keeps ``tests/fuzz`` on one worker, whose last file counts the others' cases);
2. the ``distributed`` tests (each spawns several processes) alone, one at a time.

Usage: ``python tools/test_suite.py [--workers N] [PYTEST ARGS...]`` (``make test
PYTEST_ARGS='-k plan'``). pytest exits 5 when it selected no test: a run of the suite that
ran nothing fails; one of the two halves may be empty (``-k`` can select tests of one kind
only), and says so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

NO_TESTS = 5
"""pytest's exit code when it collected no test."""


def verdict(first: int, second: int) -> tuple[int, list[str]]:
    """The suite's exit code from the two runs' codes, and what to say about empty halves."""
    for code in (first, second):
        if code not in (0, NO_TESTS):
            return code, []
    if first == second == NO_TESTS:
        return NO_TESTS, ["make test: no test selected"]
    notes = []
    if first == NO_TESTS:
        notes.append("make test: no test without the distributed marker selected")
    if second == NO_TESTS:
        notes.append("make test: no distributed test selected")
    return 0, notes


def marker_expressions(mark: str | None) -> tuple[str, str]:
    """The ``-m`` of each half, with the user's own ``-m`` (``make test PYTEST_ARGS='-m "not
    slow"'``) kept in both: pytest would let a second ``-m`` replace the first."""
    if not mark:
        return "not distributed", "distributed"
    return f"not distributed and ({mark})", f"distributed and ({mark})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("-m", dest="mark", default=None, help="pytest marker expression")
    args, pytest_args = parser.parse_known_args(argv)
    spread, alone = marker_expressions(args.mark)
    pytest = [sys.executable, "-m", "pytest", "-q"]
    first = subprocess.call([*pytest, "-p", "xdist", "-n", str(args.workers), "--dist",
                             "loadfile", "-m", spread, *pytest_args])
    if first not in (0, NO_TESTS):
        return first
    second = subprocess.call([*pytest, "-m", alone, *pytest_args])
    code, notes = verdict(first, second)
    for note in notes:
        print(note, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
