"""Failing workers: how long until every process of the job has exited, and what is left.

Runs ``pipesl train iot-digits`` (five processes: the microcontroller's stage 1, three relays,
pi2's stage 2 and loss; emulated at the planned speeds) once per injected fault, follows the
command's whole process tree through ``/proc``, and prints per fault: the node, how the
launcher described it, the seconds from the fault (the worker's log line) to the last process
gone, the processes seen and the orphans left (must be 0). Then a kill in the middle of a run
with checkpoints, and its resume: the iterations lost.

Every fault uses the defaults (``--hang-timeout 15``, ``--timeout 120``).

Run: ``.venv/bin/python benchmarks/faults.py [--quick]`` (about 4 minutes; each row starts its
processes afresh).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipesl.runtime.procfs import watch_tree

FAULTS = [
    ("kill", "pi2", "F", "kill:node=pi2,iteration=2,phase=F"),
    ("kill", "mesh1", "relay", "kill:node=mesh1,iteration=2,phase=relay"),
    ("kill", "mcu", "step", "kill:node=mcu,iteration=2,phase=step"),
    ("hang", "pi2", "B", "hang:node=pi2,iteration=2,phase=B"),
    ("hang", "mesh1", "relay", "hang:node=mesh1,iteration=2,phase=relay"),
    ("raise", "mcu", "F", "raise:node=mcu,iteration=2,phase=F"),
    ("raise", "sw", "relay", "raise:node=sw,iteration=2,phase=relay"),
]
QUICK = {0, 3, 5}
_FAULT_AT = re.compile(r"injecting fault .* \(wall clock (\d+\.\d+)\)")


@dataclass
class Row:
    fault: str
    node: str
    phase: str
    code: int
    seconds: float
    processes: int
    orphans: int
    message: str


def reported_as(message: str) -> str:
    """``worker X (..) died with signal 9 (SIGKILL) during ...`` -> ``X: signal 9 (SIGKILL)``."""
    found = re.match(r"error: (?:worker (\S+) \(.*?\)|job) (died with signal \d+ \(\w+\)|"
                     r"hung|stalled|raised \w+|failed|exited with code \d+)", message)
    if found is None:
        return "?"
    return f"{found.group(1) or 'job'}: {found.group(2).replace('died with ', '')}"


def pipesl_train(*args: str, timeout_s: float = 300.0) -> tuple[int, str, str, object]:
    """Run ``pipesl train ARGS``; return exit code, stdout, stderr and the process watch."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen([sys.executable, "-m", "pipesl", "train", *args],
                                    stdout=fo, stderr=fe, text=True)
            watch = watch_tree(proc, timeout_s)
        return watch.returncode, out.read_text(), err.read_text(), watch


def run_fault(fault: str, node: str, phase: str, spec: str, extra: list[str]) -> Row:
    code, _, err, watch = pipesl_train("iot-digits", "--steps", "6", "--inject-fault", spec,
                                       *extra)
    fired = _FAULT_AT.search(err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    seconds = watch.all_exited_at - float(fired.group(1)) if fired else float("nan")
    return Row(fault, node, phase, code, seconds, len(watch.pids), len(watch.orphans),
               errors[0] if errors else err.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three faults only")
    args = parser.parse_args()
    rows = []
    for i, (fault, node, phase, spec) in enumerate(FAULTS):
        if args.quick and i not in QUICK:
            continue
        rows.append(run_fault(fault, node, phase, spec, []))
        r = rows[-1]
        print(f"  {fault:5} {node:6} {phase:5} -> {r.seconds:5.1f} s, orphans {r.orphans}",
              file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(Path(tmp) / "ckpt")
        rows.append(run_fault("kill", "pi2", "F", "kill:node=pi2,iteration=5,phase=F",
                              ["--checkpoint-dir", ckpt, "--checkpoint-every", "2"]))
        rows[-1].phase = "F+ckpt"
        rows.append(run_fault("kill", "pi2", "ckpt", "kill:node=pi2,iteration=3,phase=checkpoint",
                              ["--checkpoint-dir", ckpt + "-2", "--checkpoint-every", "2"]))
        code, out, err, _ = pipesl_train("iot-digits", "--steps", "8", "--checkpoint-dir", ckpt,
                                         "--checkpoint-every", "2", "--resume", "--json")
        resumed = json.loads(out) if code == 0 else None
        code2, out2, err2, _ = pipesl_train("iot-digits", "--steps", "6", "--checkpoint-dir",
                                            ckpt + "-2", "--checkpoint-every", "2", "--resume",
                                            "--json")
        resumed2 = json.loads(out2) if code2 == 0 else None

    print(f"{'fault':6} {'node':6} {'phase':7} {'exit':>4}  {'reported as':26} "
          f"{'all exited after':>16} {'processes':>9} {'orphans':>7}")
    for r in rows:
        print(f"{r.fault:6} {r.node:6} {r.phase:7} {r.code:4d}  {reported_as(r.message):26} "
              f"{r.seconds:14.1f} s {r.processes:9d} {r.orphans:7d}")
    print()
    for r in rows:
        print(f"{r.fault} {r.node} {r.phase}: {r.message}")
    print()
    for label, doc, error in (("kill in iteration 5 (F), checkpoints every 2", resumed, err),
                              ("kill in the checkpoint of iteration 3", resumed2, err2)):
        if doc is None:
            print(f"resume after {label}: failed: {error.strip().splitlines()[-1]}")
            continue
        print(f"resume after {label}: restarted at iteration {doc['start_iteration']}, "
              f"{doc['lost_iterations']} completed iteration(s) lost besides the one in "
              f"flight; ran {len(doc['iterations'])} iterations, saved checkpoints "
              f"{doc['checkpoints']}")


if __name__ == "__main__":
    main()
