"""Run the fuzz suite and print how every class of hostile input ended: class -> cases -> outcome.

Runs ``pytest tests/fuzz`` (the default run, or with ``--long`` the default run plus the
``@pytest.mark.slow`` one, twelve times the cases) with ``PIPESL_FUZZ_TALLY`` set, reads the tally
the suite writes, and prints it as a Markdown table with the wall time. Exits with pytest's
code, and with 1 when fewer than 1000 cases ran or any case ended other than in a clean error
or an equal load.

Run: ``.venv/bin/python benchmarks/fuzz_report.py [--long] [pytest args...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOOD = ("ProblemError", "PlanError", "InfeasibleError", "accepted, equal", "exit 1", "exit 0",
        "feasible (planned)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also the slow, 12x run")
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        tally_path = Path(tmp) / "tally.json"
        env = {**os.environ, "PIPESL_FUZZ_TALLY": str(tally_path)}
        cmd = [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider",
               *(["-m", "slow or not slow"] if args.long else []), *extra]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        seconds = time.perf_counter() - started
        if not tally_path.exists():
            sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            return proc.returncode or 1
        tally: dict[str, dict[str, int]] = json.loads(tally_path.read_text())
    print("| class of input | cases | how they ended |")
    print("|---|---:|---|")
    total = 0
    bad = []
    for cls, outcomes in sorted(tally.items()):
        n = sum(outcomes.values())
        total += n
        how = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1]))
        print(f"| {cls} | {n} | {how} |")
        bad += [f"{cls}: {k}" for k in outcomes if not k.startswith(GOOD)]
    print(f"| **total** | **{total}** | |")
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"\npytest: {summary}  (wall {seconds:.1f} s)")
    if bad:
        print("cases that ended badly: " + "; ".join(bad))
    if total < 1000:
        print(f"only {total} cases ran; a full run tries at least 1000")
    return proc.returncode or (1 if bad or total < 1000 else 0)


if __name__ == "__main__":
    raise SystemExit(main())
