"""The executor against a fake in-process network: no processes, no process group.

Every node's :class:`Executor` runs its program on its own thread of this process; the fake
link layer hands each sent tensor to the receiving node's queue for that transfer and logs
every send and receive. The tests check the order of the actions against the program lowered
from the schedule table, that every delivered tensor is the one its sender sent, and that the
pipelined iterations end with the parameters of single-process training.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from typing import Any

import pytest
import torch
from tests.runtime.runtime_cases import line_problem, three_stage_plan, ushaped_plan

from pipesl.plan import Plan, Stage
from pipesl.runtime import RunConfig, build_config, make_job, train_reference
from pipesl.runtime.emulator import Emulator
from pipesl.runtime.executor import Executor
from pipesl.runtime.program import (
    Compute,
    Recv,
    Relay,
    Send,
    Transfer,
    interleaves,
    lower,
    posted_ahead,
)
from pipesl.runtime.records import Loss, Pass, Recorder
from pipesl.runtime.stages import Stage as StageRunner
from pipesl.runtime.stages import build_chain, micro_batch_loss, stage_module
from pipesl.runtime.topology import build_topology


class FakeNetwork:
    """Queues per transfer; a log per node of ("send"/"recv", transfer, micro-batch)."""

    def __init__(self) -> None:
        self.queues: dict[Transfer, queue.SimpleQueue[tuple[int, int, torch.Tensor]]] = (
            defaultdict(queue.SimpleQueue))
        self.log: dict[str, list[tuple[str, Transfer, int]]] = defaultdict(list)
        self.sent: dict[tuple[Transfer, int, int], torch.Tensor] = {}
        self.received: dict[tuple[Transfer, int, int], torch.Tensor] = {}
        self.lock = threading.Lock()

    def node(self, name: str) -> FakeLinks:
        return FakeLinks(self, name)


class FakeLinks:
    def __init__(self, net: FakeNetwork, node: str) -> None:
        self.net, self.node = net, node

    def send(self, transfer: Transfer, iteration: int, micro_batch: int, tensor: Any,
             ready: float) -> None:
        assert transfer.sender == self.node
        copy = tensor.detach().clone()
        with self.net.lock:
            self.net.log[self.node].append(("send", transfer, micro_batch))
            self.net.sent[(transfer, iteration, micro_batch)] = copy
        self.net.queues[transfer].put((iteration, micro_batch, copy))

    def recv(self, transfer: Transfer, iteration: int, micro_batch: int
             ) -> tuple[Any, float]:
        assert transfer.receiver == self.node
        it, m, tensor = self.net.queues[transfer].get(timeout=30)
        assert (it, m) == (iteration, micro_batch), "a stream delivered out of order"
        with self.net.lock:
            self.net.log[self.node].append(("recv", transfer, micro_batch))
            self.net.received[(transfer, iteration, micro_batch)] = tensor
        return tensor, 0.0


CONFIG = build_config(steps=2, dtype="float64", data="digits", lr=0.1, momentum=0.5,
                   emulate=False)


def run_in_process(problem: Any, plan: Plan, config: RunConfig, schedule: str
                   ) -> tuple[FakeNetwork, dict[str, torch.Tensor], dict[str, Recorder], Any]:
    """Every node's executor on a thread of this process, ``config.training.steps`` iterations."""
    job = make_job(problem, plan, config.with_options(schedule=schedule))
    topo, cfg = job.topology, job.config
    programs = lower(topo)
    net = FakeNetwork()
    from pipesl.runtime.data import make_batches

    batches = make_batches(job.data)
    loss = micro_batch_loss(job.model.loss, topo.batch_size)
    offsets = [0]
    for n in topo.sizes:
        offsets.append(offsets[-1] + n)
    stages: dict[str, StageRunner] = {}
    executors: dict[str, Executor] = {}
    recorders: dict[str, Recorder] = {}
    for node in topo.nodes:
        role = topo.stage_of(node)
        stage = None
        if role is not None:
            chain = build_chain(job.model.ref, cfg.job.seed, torch.float64,
                                problem.model.num_layers)
            last = role.index == topo.num_stages - 1 and not topo.has_label_route
            stage = stages[node] = StageRunner(
                stage_module(chain, role.first_layer, role.last_layer), cfg.training.lr,
                cfg.training.momentum,
                loss if last else None, input_grad=role.index > 0)
        recorders[node] = Recorder()
        executors[node] = Executor(
            programs[node], stage=stage, stage_index=None if role is None else role.index,
            loss=loss if topo.has_label_route and node == topo.loss_node else None,
            links=net.node(node), emulator=Emulator(topo, node, frozenset(), 1.0),
            recorder=recorders[node], offsets=tuple(offsets), loss_stage=topo.num_stages)
    for it in range(cfg.training.steps):
        x, y = batches.batch(it)
        errors: list[BaseException] = []

        def body(node: str, it: int = it, x: torch.Tensor = x, y: torch.Tensor = y,
                 errors: list[BaseException] = errors) -> None:
            try:
                holds = node == topo.source or (topo.labels_local and node == topo.loss_node)
                if node in stages:
                    stages[node].zero_grad()
                executors[node].run(it, 0.0, x if node == topo.source else None,
                                    y if holds else None)
                if node in stages:
                    stages[node].step()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=body, args=(n,)) for n in topo.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads)
    state = {k: v for s in stages.values() for k, v in s.module.state_dict().items()}
    return net, state, recorders, topo


def _expected_log(programs: Any, node: str, steps: int) -> list[tuple[str, Transfer, int]]:
    """The sends and receives of the node's stage lane, in program order, per iteration."""
    out: list[tuple[str, Transfer, int]] = []
    for _ in range(steps):
        for a in programs[node].lanes[0].actions:
            if isinstance(a, Recv):
                out.append(("recv", a.transfer, a.micro_batch))
            elif isinstance(a, Send):
                out.append(("send", a.transfer, a.micro_batch))
    return out


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_three_stages_with_a_relay_run_in_program_order_and_match_the_reference(
        schedule: str) -> None:
    problem = line_problem("cnn-digits", 10, schedule=schedule)
    plan = three_stage_plan(4)  # M = 3, the last micro-batch has 2 samples
    net, state, recorders, topo = run_in_process(problem, plan, CONFIG, schedule)
    programs = lower(topo)

    # Order of actions: each stage lane sent and received exactly in its program's order
    # (node a also relays the labels, on a lane of its own and transfers of their own).
    for node in ("src", "a", "b"):
        expected = _expected_log(programs, node, CONFIG.training.steps)
        mine = {t for _, t, _ in expected}
        assert [e for e in net.log[node] if e[1] in mine] == expected
    assert [(op, t.kind) for op, t, _ in net.log["a"] if t.kind == "labels"] == [
        ("recv", "labels"), ("send", "labels")] * CONFIG.training.steps
    # The relay h forwarded every activation and gradient of route 1, in the producer's order.
    relayed = [(op, t.kind, m) for op, t, m in net.log["h"]]
    f_order = [a.micro_batch for a in topo.table.orders[1] if a.kind == "F"]
    assert [(k, m) for op, k, m in relayed if op == "send" and k == "F"] == [
        ("F", m) for m in f_order] * CONFIG.training.steps
    # The compute order of every stage is its table order.
    for st in topo.stages:
        passes = [(r.kind, r.micro_batch) for r in recorders[st.node].take(0)
                  if isinstance(r, Pass)]
        assert passes == [(a.kind, a.micro_batch) for a in topo.table.orders[st.index]]

    # Delivered tensors: every receive got exactly what was sent on that transfer.
    assert net.received.keys() == net.sent.keys()
    for key, tensor in net.received.items():
        assert torch.equal(tensor, net.sent[key])
    # Shapes: what crossed route 0 is stage 0's output, the last micro-batch 2 samples.
    route0 = [k for k in net.sent if k[0].route == 0 and k[0].kind == "F"]
    assert {net.sent[k].shape[0] for k in route0} == {4, 2}
    # The labels went along the label path once per iteration (src -> a -> h -> b).
    labels = sorted((k[0].position, k[1]) for k in net.sent if k[0].kind == "labels")
    assert labels == [(q, it) for q in range(3) for it in range(CONFIG.training.steps)]

    ref, _ = train_reference(problem, CONFIG)
    assert state.keys() == ref.keys()
    for k in ref:
        assert torch.allclose(state[k], ref[k], rtol=0, atol=1e-12), k


def test_u_shaped_loss_lane_and_relay_lanes() -> None:
    problem = line_problem("mlp-digits", 8, labels_at="src")
    net, state, recorders, topo = run_in_process(problem, ushaped_plan(3), CONFIG, "gpipe")
    programs = lower(topo)
    lanes = {lane.name for lane in programs["src"].lanes}
    assert lanes == {"stage", "loss"}
    assert {lane.name for lane in programs["r"].lanes} == {"relay F0", "relay B0", "relay F1",
                                                          "relay B1"}
    # The loss lane: receive the output, compute, send the gradient, per micro-batch.
    loss_lane = programs["src"].lanes[1].actions
    m_total = topo.num_micro_batches
    assert [type(a) for a in loss_lane] == [Recv, Compute, Send] * m_total
    assert all(isinstance(a, Relay) for lane in programs["r"].lanes for a in lane.actions)
    # Nothing carries labels: they stay on src.
    assert not any(k[0].kind == "labels" for k in net.sent)
    for key, tensor in net.received.items():
        assert torch.equal(tensor, net.sent[key])
    losses = [r for r in recorders["src"].take(1) if isinstance(r, Loss)]
    assert [r.micro_batch for r in losses] == list(range(m_total))
    ref, ref_losses = train_reference(problem, CONFIG)
    assert sum(r.value for r in losses) == pytest.approx(ref_losses[1], abs=1e-12)
    for k in ref:
        assert torch.allclose(state[k], ref[k], rtol=0, atol=1e-12), k


def test_lowering_of_a_two_stage_1f1b_table() -> None:
    problem = line_problem("mlp-digits", 8, schedule="1f1b")
    plan = Plan((Stage("src", 1, 2), Stage("a", 3, 4)), (("src", "a"),), 2)  # M = 4
    topo = build_topology(problem, plan)
    programs = lower(topo)
    text = [
        (type(a).__name__, getattr(a, "kind", None) or a.transfer.kind, a.micro_batch)
        for a in programs["a"].lanes[0].actions if not isinstance(a, Relay)]
    # Stage 2 (the last): labels first, then F m / B m alternating, no gradient to receive.
    assert text[0] == ("Recv", "labels", -1)
    assert [t for t in text[1:] if t[0] == "Compute"] == [
        ("Compute", k, m) for a in topo.table.orders[1] for k, m in [(a.kind, a.micro_batch)]]
    assert ("Send", "B", 0) in text and ("Recv", "F", 3) in text
    assert not any(t[0] == "Recv" and t[1] == "B" for t in text)
    src = programs["src"].lanes[0].actions
    assert isinstance(src[0], Send) and src[0].transfer.kind == "labels"
    assert programs["src"].inbound() == {
        next(a.transfer for a in src if isinstance(a, Recv)): tuple(
            a.micro_batch for a in topo.table.orders[0] if a.kind == "B")}


def test_receives_posted_ahead_except_a_stages_own_under_real_1f1b() -> None:
    plan = three_stage_plan(4)  # src[1-2] -> a[3-4] -> (a, h, b) -> b[5]; h relays
    gpipe = build_topology(line_problem("cnn-digits", 10, schedule="gpipe"), plan)
    f1b = build_topology(line_problem("cnn-digits", 10, schedule="1f1b"), plan)
    assert not interleaves(gpipe) and interleaves(f1b)
    for node, program in lower(gpipe).items():
        assert posted_ahead(program, gpipe, padded=False) == frozenset(program.inbound()), node
    programs = lower(f1b)
    for node, program in programs.items():
        inbound = frozenset(program.inbound())
        assert posted_ahead(program, f1b, padded=True) == inbound  # emulated passes
        stage = {a.transfer for lane in program.lanes if lane.name == "stage"
                 for a in lane.actions if isinstance(a, Recv) and a.transfer.kind != "labels"}
        assert posted_ahead(program, f1b, padded=False) == inbound - stage, node
    # The relay's receives stay ahead, and the labels; stage b's activations do not.
    assert posted_ahead(programs["h"], f1b, padded=False) == frozenset(programs["h"].inbound())
    assert {t.kind for t in posted_ahead(programs["b"], f1b, padded=False)} == {"labels"}
