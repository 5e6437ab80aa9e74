"""A worker that hangs or raises mid-iteration ends the whole job quickly, with one line naming
the node and stage, and leaves no process behind (the kill case is the first half of
``test_checkpoint_resume.py``). While the job runs, every socket is on loopback.

Two processes (src: stage 1, a: stage 2 and the loss; mlp-digits, B = 8, b = 4), emulated at
a tenth of the planned durations; the hang timeout is 5 s here (15 s by default).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fault_cases import run_train, write_case
from runtime_cases import line_problem

from pipesl.plan import Plan, Stage
from pipesl.runtime import build_config, train
from pipesl.runtime.liveness import WorkerFailure
from pipesl.runtime.procfs import running

EXIT_BOUND_S = 30.0


def two_stage_plan() -> Plan:
    return Plan((Stage("src", 1, 2), Stage("a", 3, 4)), (("src", "a"),), 4)


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_a_hung_worker_is_stopped_within_the_hang_timeout(tmp_path: Path) -> None:
    problem, plan = write_case(tmp_path, line_problem("mlp-digits", 8), two_stage_plan())
    run = run_train(problem, plan, "--steps", "4", "--time-scale", "0.1", "--hang-timeout",
                    "5", "--inject-fault", "hang:node=a,iteration=1,phase=B")
    print(f"hang: every process exited {run.exit_s:.1f} s after the fault; "
          f"{len(run.pids)} processes, orphans {run.orphans}")
    assert run.returncode == 1
    assert len(run.errors) == 1, run.stderr[-3000:]
    assert re.fullmatch(r"error: worker a \(rank 1: stage 2 \(L3-4\), loss\) hung: busy for "
                        r"5\.\d s without progress in the backward pass of micro-batch 0, "
                        r"iteration 1 \(hang timeout 5 s\); stopped all 2 processes in "
                        r"\d+\.\d s", run.errors[0]), run.errors[0]
    assert 5.0 <= run.exit_s < EXIT_BOUND_S
    assert len(run.pids) >= 2 and run.orphans == []
    # Security: the job's sockets (gloo's listeners and connections) are on loopback only.
    listening = [s for s in run.sockets if s.state == "LISTEN"]
    assert listening, "gloo listens while the job runs"
    assert all(s.loopback for s in run.sockets), run.sockets
    assert all(s.remote in ("0.0.0.0", "::", "127.0.0.1", "::1") for s in run.sockets)


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_a_worker_that_raises_ends_the_job_at_once(capfd: pytest.CaptureFixture[str]) -> None:
    config = build_config(steps=4, time_scale=0.1, fault="raise:node=src,iteration=2,phase=F")
    with pytest.raises(WorkerFailure) as failure:
        train(line_problem("mlp-digits", 8), two_stage_plan(), config)
    gone_at = time.time()
    err = failure.value
    fired = re.search(r"injecting fault .* \(wall clock (\d+\.\d+)\)", capfd.readouterr().err)
    assert fired is not None
    exit_s = gone_at - float(fired.group(1))
    print(f"raise: every process exited {exit_s:.1f} s after the fault; pids {err.pids}")
    assert str(err).startswith("worker src (rank 0: stage 1 (L1-2)) raised InjectedFault: "
                               "injected fault (raise at node src, iteration 2, forward pass)")
    assert (err.node, err.rank, err.cause, err.completed_iterations) == ("src", 0, "raised", 2)
    assert exit_s < EXIT_BOUND_S and len(err.pids) == 2
    assert err.orphans == () and not any(running(pid) for pid in err.pids)
