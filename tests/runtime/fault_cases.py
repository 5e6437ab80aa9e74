"""Run ``pipesl train`` as a command and watch every process it starts (helpers, not tests).

:func:`run_train` starts the command, follows its process tree through ``/proc`` until it
exits (:func:`pipesl.runtime.procfs.watch_tree`), and returns the exit code, the error line,
when the injected fault fired (the worker's log line ``injecting fault ... (wall clock T)``),
when the last process was gone, the orphans and every TCP socket seen.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipesl.plan import Plan, dump_plan, plan_to_dict
from pipesl.problem import Problem, dump_problem
from pipesl.runtime.procfs import TcpSocket, watch_tree

_FAULT_AT = re.compile(r"injecting fault .* \(wall clock (\d+\.\d+)\)")


@dataclass
class TrainRun:
    """What one ``pipesl train`` command did."""

    returncode: int
    stdout: str
    stderr: str
    pids: list[int]
    orphans: list[int]
    fault_at: float | None
    """``time.time()`` when the fault fired (None: it did not)."""
    all_exited_at: float
    sockets: list[TcpSocket]

    @property
    def errors(self) -> list[str]:
        """The ``error: ...`` lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]

    @property
    def exit_s(self) -> float:
        """Seconds from the fault to the last process of the job gone."""
        assert self.fault_at is not None, self.stderr[-2000:]
        return self.all_exited_at - self.fault_at


def write_case(folder: Path, problem: Problem, plan: Plan) -> tuple[Path, Path]:
    """The problem (YAML) and plan (JSON) files of a case."""
    folder.mkdir(parents=True, exist_ok=True)
    dump_problem(problem, folder / "problem.yaml")
    dump_plan(plan_to_dict(plan), folder / "plan.json")
    return folder / "problem.yaml", folder / "plan.json"


def run_train(problem: Path, plan: Path, *options: str, timeout_s: float = 150.0) -> TrainRun:
    """``pipesl train PROBLEM --plan PLAN OPTIONS...``, watched to the last process."""
    out, err = plan.parent / "stdout.txt", plan.parent / "stderr.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "pipesl", "train", str(problem),
                                 "--plan", str(plan), *options], stdout=fo, stderr=fe,
                                text=True)
        watch = watch_tree(proc, timeout_s)
    stderr = err.read_text()
    found = _FAULT_AT.search(stderr)
    return TrainRun(watch.returncode, out.read_text(), stderr, watch.pids, watch.orphans,
                    float(found.group(1)) if found else None, watch.all_exited_at,
                    [s for seen in watch.sockets.values() for s in seen])
