"""In-process pieces of failure handling, checkpoints and the audit (no process group)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from runtime_cases import line_problem, three_stage_plan, ushaped_plan

from pipesl.exceptions import ProblemError
from pipesl.plan import Plan
from pipesl.runtime import RunConfig, build_config, make_job
from pipesl.runtime import checkpoint as ckpt
from pipesl.runtime.audit import Auditor, check_audit, collect_audit, digest
from pipesl.runtime.data import make_batches
from pipesl.runtime.faults import FaultInjector, FaultSpec, InjectedFault, parse_fault
from pipesl.runtime.liveness import (
    BUSY,
    DONE,
    STARTING,
    WAITING,
    Board,
    Liveness,
    Status,
    find_hang,
)
from pipesl.runtime.procfs import running, tcp_sockets
from pipesl.runtime.stages import build_chain, stage_module
from pipesl.runtime.topology import build_topology
from pipesl.runtime.transport import BACKWARD, FORWARD, LABELS

# ---------------------------------------------------------------------- faults


def test_fault_round_trip_and_defaults() -> None:
    spec = parse_fault("hang:node=es1,iteration=2,phase=B,micro_batch=1")
    assert spec == FaultSpec("hang", "es1", 2, "B", 1)
    assert parse_fault(spec.to_text()) == spec
    assert parse_fault("kill:node=a") == FaultSpec("kill", "a", 0, "F", None)
    assert spec.describe() == "hang at node es1, iteration 2, backward pass of micro-batch 1"


@pytest.mark.parametrize(("text", "field"), [
    ("explode:node=a", "fault"), ("kill", "fault"), ("kill:iteration=1", "fault"),
    ("kill:node=a,phase=X", "fault.phase"), ("kill:node=a,iteration=-1", "fault.iteration"),
    ("kill:node=a,iteration=two", "fault.iteration"), ("kill:node=a,node=b", "fault"),
    ("kill:node=a,when=now", "fault")])
def test_bad_faults_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ProblemError, match=f"^{field}:"):
        parse_fault(text)


def test_injector_fires_once_at_its_point_only() -> None:
    inj = FaultInjector(parse_fault("raise:node=a,iteration=1,phase=B"), "a")
    inj.check(0, "B", 0)
    inj.check(1, "F", 0)
    with pytest.raises(InjectedFault, match="raise at node a, iteration 1, backward pass"):
        inj.check(1, "B", 2)
    inj.check(1, "B", 3)  # once
    FaultInjector(parse_fault("raise:node=a"), "b").check(0, "F", 0)  # another node's


def test_make_job_refuses_faults_that_cannot_fire() -> None:
    problem = line_problem("cnn-digits", 10)
    plan = three_stage_plan(4)  # src[1-2] -> a[3-4] -> (a, h, b) -> b[5]; h relays
    for fault, field in (("kill:node=zz", "node"), ("kill:node=h,phase=F", "phase"),
                         ("kill:node=a,phase=relay", "phase"), ("kill:node=a,phase=L", "phase"),
                         ("kill:node=a,phase=checkpoint", "phase"),
                         ("kill:node=a,iteration=3", "iteration"),
                         ("kill:node=a,micro_batch=3", "micro_batch")):
        with pytest.raises(ProblemError, match=rf"^fault\.{field}:"):
            make_job(problem, plan, build_config(fault=fault))
    job = make_job(problem, plan, build_config(fault="hang:node=h,phase=relay,iteration=2"))
    assert job.fault == FaultSpec("hang", "h", 2, "relay")


def test_fault_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPESL_FAULT", "raise:node=b,phase=B")
    job = make_job(line_problem("cnn-digits", 10), three_stage_plan(4), RunConfig())
    assert job.fault == FaultSpec("raise", "b", 0, "B")
    assert job.config.liveness.fault == job.fault.to_text()


def test_hang_timeout_must_exceed_the_longest_emulated_task() -> None:
    problem = line_problem("cnn-digits", 10)
    with pytest.raises(ProblemError, match=r"^liveness\.hang_timeout_s: .*raise --hang-timeout"):
        make_job(problem, three_stage_plan(4), build_config(time_scale=2000.0))
    make_job(problem, three_stage_plan(4), build_config(time_scale=2000.0, emulate=False))


@pytest.mark.parametrize(("options", "field"), [
    ({"hang_timeout_s": 0.0}, "liveness.hang_timeout_s"),
    ({"checkpoint_every": 0}, "checkpoint.every"), ({"resume": True}, "checkpoint.resume"),
    ({"fault": "kill"}, "liveness.fault"),
    ({"liveness": {"fault": "kill"}}, "liveness.fault"),
    ({"audit": "/nonexistent-folder/audit.jsonl"}, "outputs.audit"),
    ({"checkpoint_dir": "/nonexistent-folder/sub"}, "checkpoint.folder"),
    ({"emulation": {"time_scale": -1.0}}, "emulation.time_scale"),
    ({"transport": {"post_ahead": "yes"}}, "transport.post_ahead"),
    ({"emulation": {"latency": 1.0}}, "emulation.latency"),
    ({"no_such_option": 1}, "no_such_option")])
def test_bad_reliability_options_name_the_option(options: dict[str, object], field: str) -> None:
    with pytest.raises(ProblemError, match=f"^{re.escape(field)}: "):
        RunConfig().with_options(**options)


# ---------------------------------------------------------------------- liveness


def _status(state: float, since: float, progress_at: float, what: str = "x") -> Status:
    return Status(1, progress_at, state, since, what)


def test_hang_rules() -> None:
    now = 1000.0
    fine = [_status(BUSY, now - 1, now - 1), _status(WAITING, now - 30, now - 30)]
    assert find_hang(fine, 15.0, now) is None
    hung = [_status(WAITING, now - 30, now - 30), _status(BUSY, now - 16, now - 40, "the pass")]
    assert find_hang(hung, 15.0, now) == (1, "busy for 16.0 s without progress in the pass")
    stalled = [_status(WAITING, now - 30, now - 20), _status(WAITING, now - 30, now - 16)]
    assert find_hang(stalled, 15.0, now) == (None, "no worker made progress for 16.0 s")
    progressing = [_status(WAITING, now - 30, now - 20), _status(WAITING, now - 30, now - 2)]
    assert find_hang(progressing, 15.0, now) is None
    starting = [_status(STARTING, now - 100, now - 100), _status(BUSY, now - 99, now - 99)]
    assert find_hang(starting, 15.0, now) is None
    finished = [_status(DONE, now - 100, now - 100), _status(WAITING, now - 30, now - 1)]
    assert find_hang(finished, 15.0, now) is None


def test_liveness_publishes_the_oldest_busy_thread_on_the_board() -> None:
    board = Board(mp.get_context("spawn"), 2)
    live = Liveness(board, 1)
    assert board.read(1).state == STARTING and board.read(0).state == 0.0
    live.ready()
    assert board.read(1).state == BUSY and board.read(1).what == "running"
    with live.waiting("activation 0 of iteration 2"):
        s = board.read(1)
        assert (s.state, s.what) == (WAITING, "activation 0 of iteration 2")
        inside = threading.Event()
        leave = threading.Event()

        def other() -> None:
            with live.busy("the loss of micro-batch 1"):
                inside.set()
                leave.wait(5)

        t = threading.Thread(target=other)
        t.start()
        assert inside.wait(5)
        assert (board.read(1).state, board.read(1).what) == (BUSY, "the loss of micro-batch 1")
        leave.set()
        t.join()
        assert board.read(1).state == WAITING
    before = board.read(1).progress
    live.progress()
    assert board.read(1).progress == before + 1
    assert live.stuck(10.0) is None
    with live.busy("a long pass"):
        time.sleep(0.05)
        assert "a long pass" in (live.stuck(0.01) or "")
    live.done()
    assert board.read(1).state == DONE


# ---------------------------------------------------------------------- checkpoints


def _trained_chain(steps: int = 3) -> tuple[torch.nn.Sequential, torch.optim.SGD]:
    chain = build_chain("cnn-digits", 0, torch.float64)
    opt = torch.optim.SGD(chain.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        opt.zero_grad()
        chain(torch.randn(4, 1, 8, 8, generator=gen, dtype=torch.float64)).sum().backward()
        opt.step()
    return chain, opt


def _save_split(root: Path, completed: int, chain: torch.nn.Sequential,
                opt: torch.optim.Optimizer, cuts: list[tuple[int, int]],
                manifest: bool = True) -> None:
    files = []
    for first, last in cuts:
        files += ckpt.save_stage(root, completed, stage_module(chain, first, last), opt, first,
                                 f"node{first}")
    if manifest:
        ckpt.write_manifest(root, completed, files, len(chain), {"model": "cnn-digits"})


def test_checkpoint_per_unit_resumes_under_another_split(tmp_path: Path) -> None:
    chain, opt = _trained_chain()
    _save_split(tmp_path, 3, chain, opt, [(1, 2), (3, 5)])
    latest = ckpt.find_latest(tmp_path)
    assert latest is not None and latest.completed == 3
    assert [u["node"] for u in latest.manifest["units"]] == ["node1"] * 2 + ["node3"] * 3
    fresh = build_chain("cnn-digits", 1, torch.float64)  # other weights, to be overwritten
    for first, last in [(1, 3), (4, 5)]:
        stage = stage_module(fresh, first, last)
        sopt = torch.optim.SGD(stage.parameters(), lr=0.1, momentum=0.9)
        rng = ckpt.load_stage(latest.folder, latest.manifest, stage, sopt, first)
        assert rng is False  # no saved stage covered exactly these units
        for name, p in stage.named_parameters():
            assert torch.equal(p, chain.get_parameter(name)), name
            assert torch.equal(sopt.state[p]["momentum_buffer"],
                               opt.state[chain.get_parameter(name)]["momentum_buffer"]), name
    same = stage_module(build_chain("cnn-digits", 1, torch.float64), 1, 2)
    assert ckpt.load_stage(latest.folder, latest.manifest, same, None, 1) is True


def test_a_crash_mid_checkpoint_leaves_the_previous_one_latest(tmp_path: Path) -> None:
    chain, opt = _trained_chain()
    _save_split(tmp_path, 2, chain, opt, [(1, 2), (3, 5)])
    _save_split(tmp_path, 4, chain, opt, [(1, 2)], manifest=False)  # stage 2 never reported
    latest = ckpt.find_latest(tmp_path)
    assert latest is not None and latest.completed == 2
    with pytest.raises(Exception, match="no stage saved units"):
        ckpt.write_manifest(tmp_path, 4, [], 5, {})
    assert not (tmp_path / "iter-000004" / ckpt.MANIFEST).exists()
    # A damaged file disqualifies its checkpoint; temporary files never linger.
    _save_split(tmp_path, 6, chain, opt, [(1, 2), (3, 5)])
    (tmp_path / "iter-000006" / "unit-004.pt").write_bytes(b"torn")
    latest = ckpt.find_latest(tmp_path)
    assert latest is not None and latest.completed == 2
    assert not list(tmp_path.rglob(".*tmp*"))


def test_old_checkpoints_are_pruned_and_resume_checks_the_run(tmp_path: Path) -> None:
    chain, opt = _trained_chain()
    meta = ckpt.meta_of("cnn-digits", 5, "digits", 0, 10, "float64")
    for n in (2, 4, 6):
        files = ckpt.save_stage(tmp_path, n, chain, opt, 1, "src")
        ckpt.write_manifest(tmp_path, n, files, 5, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter-000004", "iter-000006"]
    ckpt.write_progress(tmp_path, 7)
    (tmp_path / "iter-000008").mkdir()  # a crash before any file of checkpoint 8
    with pytest.raises(ProblemError, match=r"--checkpoint-dir: .*already holds"):
        ckpt.prepare_resume(tmp_path, False, meta, 10)
    with pytest.raises(ProblemError, match=r"checkpoint\.seed"):
        ckpt.prepare_resume(tmp_path, True, {**meta, "seed": 1}, 10)
    with pytest.raises(ProblemError, match="steps"):
        ckpt.prepare_resume(tmp_path, True, meta, 6)
    point, lost = ckpt.prepare_resume(tmp_path, True, meta, 10)
    assert point is not None and point.completed == 6 and lost == 1
    assert not (tmp_path / "iter-000008").exists()
    with pytest.raises(ProblemError, match=r"--resume: .*no complete checkpoint"):
        ckpt.prepare_resume(tmp_path / "empty", True, meta, 10)


# ---------------------------------------------------------------------- audit


def _audit_case(tmp_path: Path, labels_at: str | None, leak: str | None
                ) -> tuple[list[dict[str, object]], dict[str, torch.Tensor], object]:
    """Hand-made audit records of one iteration of the U-shaped plan (src -> r -> a), with
    a planted leak, to show the checker finds what it must."""
    problem = line_problem("mlp-digits", 9, labels_at=labels_at)
    u = ushaped_plan(4)
    plan = u if labels_at else Plan(u.stages, u.routes, 4)
    topo = build_topology(problem, plan)
    job = make_job(problem, plan, build_config(data="digits"))
    batches = make_batches(job.data)
    x, y = batches.batch(0)
    src, r = Auditor(tmp_path / "parts", "src", topo), Auditor(tmp_path / "parts", "r", topo)
    for m, (lo, hi) in enumerate([(0, 4), (4, 8), (8, 9)]):
        act = torch.tanh(x[lo:hi].reshape(hi - lo, -1) @ torch.ones(64, 32))
        if leak == "inputs" and m == 1:
            act = x[lo:hi].reshape(hi - lo, -1).clone()  # the raw micro-batch, flattened
        if leak == "sample" and m == 2:
            act = torch.cat([torch.zeros(5), x[8].reshape(-1), torch.zeros(3)])
        for aud, event, peer in ((src, "send", "r"), (r, "recv", "src")):
            aud.message(event, peer, FORWARD, 0, 0, 0, m, act)
            aud.message(event, peer, BACKWARD, 0, 0, 0, m, torch.ones_like(act))
    if leak == "labels" or labels_at is None:
        src.message("send", "r", LABELS, 0, 0, 0, 0, y)
        r.message("recv", "src", LABELS, 0, 0, 0, 0, y)
    src.control("timing records of iteration 0", "control", "a", 0, [("done", 0, 1.0)])
    src.flush()
    r.flush()
    records, tensors = collect_audit(tmp_path / "parts", tmp_path / "audit.jsonl")
    report = check_audit(records, tensors, topology=topo, batches=batches, iterations=[0])
    return records, tensors, report


def test_audit_checker_finds_planted_raw_inputs_and_labels(tmp_path: Path) -> None:
    _, _, clean = _audit_case(tmp_path / "clean", "src", None)
    assert clean.ok and not clean.raw_input_crossings and not clean.label_crossings
    assert clean.sent == 6 and clean.received == 6 and clean.by_kind["control"] == 1
    _, _, flat = _audit_case(tmp_path / "flat", "src", "inputs")
    assert len(flat.raw_input_crossings) == 1 and "input micro-batch 1" in flat.violations[0]
    _, _, inside = _audit_case(tmp_path / "inside", "src", "sample")
    assert len(inside.raw_input_crossings) == 1 and "input sample values" in inside.violations[0]
    _, _, labels = _audit_case(tmp_path / "labels", "src", "labels")
    assert len(labels.label_crossings) == 1 and "labels left src" in labels.violations[0]
    assert not labels.ok


def test_audit_without_labels_at_allows_the_labels_trip_only(tmp_path: Path) -> None:
    records, tensors, report = _audit_case(tmp_path, None, None)
    assert report.ok and len(report.label_crossings) == 1  # src > r, on the path to a
    assert (tmp_path / "audit.jsonl.tensors.pt").exists()
    line = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])
    assert {"kind", "layer", "micro_batch", "from", "to", "shape", "dtype", "sha256"} <= set(line)
    sent_labels = [r for r in records if r["kind"] == "labels" and r["event"] == "send"]
    assert sent_labels[0]["sha256"] == digest(tensors[str(sent_labels[0]["id"])])


# ---------------------------------------------------------------------- procfs


def test_procfs_sees_running_processes_and_loopback_sockets() -> None:
    assert running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    assert not running(child.pid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        mine = [t for t in tcp_sockets(os.getpid()) if t.local_port == port]
        assert len(mine) == 1 and mine[0].state == "LISTEN" and mine[0].loopback


# ---------------------------------------------------------------------- command line


def test_train_refuses_bad_reliability_options_before_starting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fault_cases import write_case

    from pipesl.cli import main

    problem, plan = write_case(tmp_path, line_problem("cnn-digits", 10), three_stage_plan(4))
    chain, opt = _trained_chain(1)
    _save_split(tmp_path / "ckpt", 2, chain, opt, [(1, 5)])
    cases = [
        (["--checkpoint-dir", str(tmp_path / "none"), "--resume"],
         "error: --resume: ", "found no complete checkpoint"),
        (["--checkpoint-dir", str(tmp_path / "ckpt")],
         "error: --checkpoint-dir: ", "already holds a checkpoint (after iteration 2)"),
        (["--checkpoint-dir", str(tmp_path / "ckpt"), "--resume"],
         "error: checkpoint.data: ", "resume with the same model"),
        (["--inject-fault", "kill:node=zz"], "error: fault.node: 'zz' is not a node", ""),
        (["--inject-fault", "hang:node=h,phase=B"], "error: fault.phase: 'B' cannot happen on h",
         "relay"),
    ]
    for options, start, inside in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(problem), "--plan", str(plan), *options])
        assert exit_info.value.code == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(start) and inside in lines[0], lines
