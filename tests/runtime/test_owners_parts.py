"""The many-owner runtime's parts without processes: merged programs, owner tags, the static
compute order, the report's arithmetic and the per-owner audit (on crafted records)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from owners_runtime_cases import owner_plan, owners_plan, owners_problem

from pipesl.plan import OwnersPlan
from pipesl.runtime.audit import digest
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.owners.audit import check_owners_audit
from pipesl.runtime.owners.program import lower_owners
from pipesl.runtime.owners.report import assemble_owners_iteration
from pipesl.runtime.owners.topology import (
    Task,
    build_owners_topology,
    check_order,
    trace_order,
)
from pipesl.runtime.program import Recv, Relay, Send, lower
from pipesl.runtime.records import IterationTimes, Loss, Pass
from pipesl.runtime.topology import build_topology
from pipesl.sim.owners import simulate_owners


def test_one_owner_program_is_the_single_owner_program() -> None:
    problem = owners_problem(one_owner=True)
    plan = owner_plan("o0", 4)
    otopo = build_owners_topology(problem, (plan,), "1f1b")
    assert lower_owners(otopo) == lower(build_topology(problem, plan, "1f1b"))
    assert otopo.nodes == build_topology(problem, plan, "1f1b").nodes


def test_owner_tags_are_disjoint_and_every_send_has_its_receive() -> None:
    problem = owners_problem(replicas="shared", labels_at_1=True)
    plan = owners_plan(labels_at_1=True, via_o1=True)
    otopo = build_owners_topology(problem, plan.plans, "gpipe")
    programs = lower_owners(otopo)
    tags: dict[int, set[int]] = {0: set(), 1: set()}
    for prog in programs.values():
        for t in [*prog.inbound(), *prog.outbound()]:
            tags[t.owner].add(t.tag)
        for t, order in prog.outbound().items():
            assert programs[t.receiver].inbound()[t] == order, t  # same stream, same order
    assert tags[0] and tags[1] and not tags[0] & tags[1]
    # o1 relays owner 0's stream (both directions) on lanes of their own
    relay_lanes = [lane.name for lane in programs["o1"].lanes if lane.name.startswith("relay")]
    assert "relay F0 o0" in relay_lanes and "relay B0 o0" in relay_lanes
    # the server's one stage lane holds both owners' passes, each owner in its table order
    stage = programs["s"].lanes[0]
    assert stage.name == "stage"
    for o in (0, 1):
        mine = [(a.kind, a.micro_batch) for a in stage.actions
                if not isinstance(a, Recv | Send | Relay) and a.owner == o]
        table = otopo.owners[o].table.orders[1]
        assert mine == [(a.kind, a.micro_batch) for a in table]


def test_the_simulator_order_is_causal_and_keeps_every_schedule() -> None:
    problem = owners_problem(replicas="per-owner", batch_sizes=(12, 10))
    plan = owners_plan(b=4)
    sim = simulate_owners(problem, plan, "1f1b", last_micro_batch="remainder")
    topos = build_owners_topology(problem, plan.plans, "1f1b").owners
    order = trace_order(topos, sim.trace.records())
    check_order(topos, order)
    s = order["s"]
    assert {t.owner for t in s} == {0, 1}
    starts = sorted((r.start_s, r.owner, r.kind, r.micro_batch) for r in sim.trace.records()
                    if r.stage == 1)
    assert [(t.owner, t.kind, t.micro_batch) for t in s] == [x[1:] for x in starts]


def test_check_order_refuses_a_broken_order() -> None:
    problem = owners_problem()
    plan = owners_plan()
    otopo = build_owners_topology(problem, plan.plans, "gpipe")
    good = dict(otopo.order)
    swapped = list(good["s"])
    i = next(i for i, t in enumerate(swapped) if t.kind == "B")
    swapped.insert(0, swapped.pop(i))  # a backward before its own stage's forwards
    with pytest.raises(AssertionError, match="order"):
        check_order(otopo.owners, {**good, "s": tuple(swapped)})
    with pytest.raises(AssertionError, match="order"):
        check_order(otopo.owners, {**good, "s": good["s"][:-1]})


def test_report_joint_and_per_owner_times() -> None:
    problem = owners_problem()
    otopo = build_owners_topology(problem, owners_plan().plans, "gpipe")
    records = [IterationTimes(0, 10.0, 10.5, 10.6, owner=0),
               IterationTimes(0, 10.1, 10.4, 10.7, owner=1),
               Pass(0, 0, "B", 1, 10.3, 10.45, 0.01, 10.3, owner=0),
               Pass(0, 0, "B", 0, 10.2, 10.30, 0.01, 10.2, owner=0),
               Pass(0, 0, "B", 1, 10.2, 10.35, 0.01, 10.2, owner=1),
               Pass(0, 1, "B", 1, 10.2, 10.90, 0.01, 10.2, owner=1),  # not a first stage
               Loss(0, 0, 1.5, owner=0), Loss(0, 1, 0.5, owner=0), Loss(0, 0, 2.0, owner=1)]
    r = assemble_owners_iteration(otopo, 0, records, 0.5, (0.4, 0.3))
    assert r.owner_measured_s == pytest.approx((0.45, 0.25))
    assert r.measured_s == pytest.approx(0.45)  # 10.0 -> 10.45
    assert r.losses == (2.0, 2.0) and r.wall_s == pytest.approx(0.7)
    assert r.owner_errors == pytest.approx((0.45 / 0.4 - 1, 0.25 / 0.3 - 1))
    seq = replace(otopo, mode="sequential")
    assert assemble_owners_iteration(seq, 0, records, 0.5, (0.4, 0.3)).measured_s == (
        pytest.approx(0.70))
    with pytest.raises(ValueError, match="owner"):
        assemble_owners_iteration(otopo, 0, records[:1], 0.5, (0.4, 0.3))


def _specs(problem, seed: int = 0) -> tuple[DataSpec, ...]:  # type: ignore[no-untyped-def]
    return tuple(DataSpec("synthetic", d.batch_size, (1, 8, 8), 10, seed=seed + o)
                 for o, d in enumerate(problem.owners))


def _record(rid: str, owner: int, kind: str, src: str, dst: str, t: torch.Tensor,
            event: str = "send", m: int | None = 0) -> dict:  # type: ignore[type-arg]
    return {"id": rid, "event": event, "kind": kind, "iteration": 0, "route": 0, "hop": 0,
            "micro_batch": m, "from": src, "to": dst, "sha256": digest(t), "owner": owner}


def _pair(records: list, tensors: dict, rid: str, owner: int, kind: str, src: str,  # type: ignore[type-arg]
          dst: str, t: torch.Tensor, m: int | None = 0) -> None:
    records.append(_record(rid, owner, kind, src, dst, t, "send", m))
    records.append(_record(rid + "r", owner, kind, src, dst, t, "recv", m))
    tensors[rid] = t
    tensors[rid + "r"] = t


def test_audit_lists_relays_on_another_owners_node_and_catches_violations() -> None:
    problem = owners_problem(labels_at_1=True)
    otopo = build_owners_topology(problem, owners_plan(labels_at_1=True, via_o1=True).plans,
                                  "gpipe")
    specs = _specs(problem)
    x0, _ = make_batches(specs[0]).batch(0)
    _, y1 = make_batches(specs[1]).batch(0)
    activation = torch.randn(4, 16, 4, 4, generator=torch.Generator().manual_seed(5))
    records: list[dict] = []  # type: ignore[type-arg]
    tensors: dict[str, torch.Tensor] = {}
    _pair(records, tensors, "o0:0", 0, "activation", "o0", "o1", activation)
    _pair(records, tensors, "o1:0", 0, "activation", "o1", "r", activation)
    clean = check_owners_audit(records, tensors, otopo, specs, [0])
    assert clean.ok and not clean.violations and clean.per_owner == (2, 0)
    assert len(clean.relayed) == 1 and "relayed by south's node o1" in clean.relayed[0]

    bad = list(records)
    _pair(bad, tensors, "o0:1", 0, "activation", "o0", "o1", x0[:4].clone())  # raw inputs
    _pair(bad, tensors, "s:0", 1, "activation", "s", "r", y1[:4].clone())  # owner 1's labels
    _pair(bad, tensors, "s:1", 1, "gradient", "s", "o0", activation)  # off owner 1's routes
    report = check_owners_audit(bad, tensors, otopo, specs, [0])
    assert not report.ok
    text = " | ".join(report.violations)
    assert "raw input left o0" in text and "north's input micro-batch 0" in text
    assert "south's labels left o1" in text
    assert "o0 is on none of owner 1's routes" in text
    assert report.raw_input_crossings and report.label_crossings

    lost = records[:-1]  # a send never received
    assert check_owners_audit(lost, tensors, otopo, specs, [0]).unmatched


def test_owners_plan_of_one_owner_builds_the_one_owner_topology() -> None:
    problem = owners_problem(one_owner=True)
    otopo = build_owners_topology(problem, OwnersPlan((owner_plan("o0", 4),)).plans)
    assert otopo.num_owners == 1 and otopo.roles("o0") == ["source", "stage 1 (L1-2)"]
    assert otopo.order["s"] == tuple(Task(0, 1, a.kind, a.micro_batch)
                                     for a in otopo.owners[0].table.orders[1])


def test_many_owner_topology_program_and_report_import_no_torch() -> None:
    code = ("import sys, pipesl.runtime.owners, pipesl.runtime.owners.topology, "
            "pipesl.runtime.owners.program, pipesl.runtime.owners.report; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
