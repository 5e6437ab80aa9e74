"""Kill a worker mid-run, resume from the last complete checkpoint under a different plan, and
end with the parameters of an uninterrupted run; the resumed run's transport audit shows what
crosses the network when the labels travel to the last stage.

The killed run is ``pipesl train`` on three stages with a relay (src[1-2] -> a[3-4] -> (a, h,
b) -> b[5], cnn-digits, B = 10, b = 4), 6 iterations, a checkpoint every 2, SGD with momentum
in float64; node a is killed (SIGKILL) in the forward pass of iteration 3 (0-based), after the
checkpoint of iteration 2 and one more completed iteration. The resumed run trains on two
stages over another route and micro-batch size (src[1-3] -> (src, r, a) -> a[4-5], b = 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fault_cases import TrainRun, run_train, write_case
from runtime_cases import line_problem, three_stage_plan

from pipesl.plan import Plan, Stage
from pipesl.runtime import TrainResult, build_config, make_job, train, train_reference
from pipesl.runtime import checkpoint as ckpt
from pipesl.runtime.audit import digest, tensors_path
from pipesl.runtime.data import make_batches

STEPS, EVERY = 6, 2
CONFIG = build_config(steps=STEPS, dtype="float64", data="digits", lr=0.1, momentum=0.5,
                   time_scale=0.1, checkpoint_every=EVERY)


def other_plan() -> Plan:
    return Plan((Stage("src", 1, 3), Stage("a", 4, 5)), (("src", "r", "a"),), 3)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainRun, Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    problem, plan = write_case(folder, line_problem("cnn-digits", 10), three_stage_plan(4))
    run = run_train(problem, plan, "--steps", str(STEPS), "--data", "digits", "--dtype",
                    "float64", "--lr", "0.1", "--momentum", "0.5", "--time-scale", "0.1",
                    "--checkpoint-dir", str(folder / "ckpt"), "--checkpoint-every", str(EVERY),
                    "--inject-fault", "kill:node=a,iteration=3,phase=F")
    return run, folder / "ckpt"


@pytest.fixture(scope="module")
def resumed(killed: tuple[TrainRun, Path]) -> TrainResult:
    _, root = killed
    return train(line_problem("cnn-digits", 10), other_plan(),
                 CONFIG.with_options(checkpoint_dir=str(root), resume=True, return_state=True,
                                     audit=str(root.parent / "audit.jsonl")))


@pytest.mark.distributed
@pytest.mark.timeout(200)
def test_a_killed_worker_ends_the_job_with_one_line(killed: tuple[TrainRun, Path]) -> None:
    run, _ = killed
    print(f"kill: every process exited {run.exit_s:.1f} s after the fault; "
          f"{len(run.pids)} processes, orphans {run.orphans}")
    assert run.returncode == 1
    assert run.errors == [run.errors[0]] and run.errors[0].startswith(
        "error: worker a (rank 1: stage 2 (L3-4)) died with signal 9 (SIGKILL) during the "
        "forward pass of micro-batch 0, iteration 3; stopped all 4 processes in "), run.stderr
    assert run.exit_s < 30.0
    assert len(run.pids) >= 4 and run.orphans == []


@pytest.mark.distributed
@pytest.mark.timeout(200)
def test_the_last_complete_checkpoint_survives(killed: tuple[TrainRun, Path]) -> None:
    _, root = killed
    latest = ckpt.find_latest(root)
    assert latest is not None and latest.completed == 2
    assert ckpt.completed_iterations(root) == 3  # iteration 2 completed after the checkpoint
    assert [u["unit"] for u in latest.manifest["units"]] == [1, 2, 3, 4, 5]
    assert [u["node"] for u in latest.manifest["units"]] == ["src", "src", "a", "a", "b"]
    assert latest.manifest["plan"]["stages"][1] == {"node": "a", "first_layer": 3,
                                                    "last_layer": 4}


@pytest.mark.distributed
@pytest.mark.timeout(200)
def test_resume_under_another_plan_ends_like_an_uninterrupted_run(
        resumed: TrainResult) -> None:
    reference, losses = train_reference(line_problem("cnn-digits", 10), CONFIG)
    assert resumed.state is not None and set(resumed.state) == set(reference)
    worst = max(float((resumed.state[k] - v).abs().max()) for k, v in reference.items())
    print(f"resumed after iteration {resumed.start_iteration}: {resumed.lost_iterations} "
          f"completed iteration(s) lost besides the one in flight; largest parameter "
          f"difference to an uninterrupted run {worst:.1e}")
    for key, value in reference.items():
        assert torch.allclose(resumed.state[key], value, rtol=1e-10, atol=1e-12), key
    assert resumed.start_iteration == 2 and resumed.lost_iterations == 1
    assert [it.iteration for it in resumed.iterations] == [2, 3, 4, 5]
    assert resumed.losses == pytest.approx(losses[2:], rel=1e-12)  # the right batches
    assert resumed.checkpoints == (4, 6)
    latest = ckpt.find_latest(resumed.config.checkpoint.folder or "")
    assert latest is not None and latest.completed == 6
    assert latest.manifest["plan"]["micro_batch_size"] == 3


@pytest.mark.distributed
@pytest.mark.timeout(200)
def test_audit_shows_raw_inputs_stay_and_labels_travel_once_per_iteration(
        resumed: TrainResult, killed: tuple[TrainRun, Path]) -> None:
    report = resumed.audit
    assert report is not None
    print(report.summary())
    assert report.ok and report.raw_input_crossings == () and report.unmatched == ()
    # Per iteration: M = 4 micro-batches x 2 hops (src > r > a), an activation and its
    # gradient each; the labels once per hop; 4 iterations were run.
    assert report.by_kind["activation"] == report.by_kind["gradient"] == 4 * 4 * 2
    assert report.by_kind["labels"] == len(report.label_crossings) == 4 * 2
    assert set(report.hops) == {"src>r activation", "r>a activation", "a>r gradient",
                                "r>src gradient", "src>r labels", "r>a labels"}
    # An independent look at the records: no tensor that crossed is an input micro-batch or
    # sample (by digest, or by value after any reshape); the labels that crossed are exactly
    # each iteration's labels.
    path = Path(resumed.config.outputs.audit or "")
    records: list[dict[str, Any]] = [json.loads(line) for line in path.read_text().splitlines()]
    tensors = torch.load(tensors_path(path), weights_only=True)
    job = make_job(line_problem("cnn-digits", 10), other_plan(), CONFIG)
    batches = make_batches(job.data)
    data = [r for r in records if r["kind"] in ("activation", "gradient", "labels")]
    assert len(data) == 2 * report.sent  # each crossing recorded by its sender and receiver
    for r in data:
        x, y = batches.batch(r["iteration"])
        t = tensors[r["id"]]
        assert r["sha256"] == digest(t) and list(t.shape) == r["shape"]
        pieces = [x, *x.split(3), *x.unbind(0)]
        assert r["sha256"] not in {digest(p) for p in pieces}
        assert not any(p.numel() == t.numel() and torch.equal(p.reshape(-1), t.reshape(-1))
                       for p in pieces)
        if r["kind"] == "labels":
            assert torch.equal(t, y) and r["micro_batch"] is None
        else:
            assert r["layer"] == 3 and t.dtype == torch.float64
    control = {r["kind"] for r in records if r["kind"] not in ("activation", "gradient",
                                                               "labels")}
    assert control == {"control", "parameters"}
