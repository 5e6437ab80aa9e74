"""The emulated truth: durations under scripted events, seeded jitter, and departures."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the module is pure Python, but pipesl.runtime loads torch

from pipesl.adapt.events import NetworkScript, parse_network_events
from pipesl.problem import load_problem
from pipesl.runtime.conditions import Conditions
from pipesl.runtime.faults import FaultSpec
from pipesl.runtime.topology import build_topology
from pipesl.sim import plan_steps
from pipesl.solvers import solve

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def dual():
    # iot-dual's plan: mcu[1-1] > mcu>mesh1 > mesh1>pi1 > pi1>pi2 > pi2[2-5]
    problem = load_problem("iot-dual")
    plan = solve(problem, "exact", objective="analytic").plan
    assert [s.name for s in plan_steps(problem, plan)] == [
        "mcu[1-1]", "mcu>mesh1 (L1)", "mesh1>pi1 (L1)", "pi1>pi2 (L1)", "pi2[2-5]"]
    return problem, plan


def _planned(problem, plan, step: int, kind: str, samples: int) -> float:
    st = plan_steps(problem, plan)[step]
    return (st.forward if kind == "F" else st.backward)(samples)


def test_the_module_itself_needs_no_torch() -> None:
    script = f"""
import importlib.util, json, sys, types
sys.modules["torch"] = None
# The package __init__ loads the torch runtime; load the module on its own.
pkg = types.ModuleType("pipesl.runtime")
pkg.__path__ = [{str(Path(SRC) / "pipesl" / "runtime")!r}]
sys.modules["pipesl.runtime"] = pkg
import pipesl.runtime.conditions, pipesl.runtime.control
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "torch"
                        and sys.modules[m] is not None)))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_without_events_the_plan_durations(dual) -> None:
    problem, plan = dual
    conditions = Conditions(problem, plan, NetworkScript(), seed=3)
    for step in range(5):
        for kind in ("F", "B"):
            for samples in (1, 8):
                for it in (0, 9):
                    assert conditions.seconds(step, kind, samples, it, 2) == _planned(
                        problem, plan, step, kind, samples)


def test_durations_follow_the_network_as_it_is(dual) -> None:
    problem, plan = dual
    script = parse_network_events([
        {"iteration": 4, "link": ["mesh1", "mcu"], "bandwidth_factor": 0.25},
        {"iteration": 6, "until": 7, "node": "pi2", "flops_factor": 0.5},
    ]).validate(problem)
    conditions = Conditions(problem, plan, script)
    for it in range(9):
        truth = script.problem_at(problem, it)
        for step in range(5):
            for kind in ("F", "B"):
                assert conditions.seconds(step, kind, 8, it, 0) == _planned(
                    truth, plan, step, kind, 8), (it, step, kind)
    hop = [conditions.seconds(1, "F", 8, it, 0) for it in range(9)]
    assert hop[:4] == [_planned(problem, plan, 1, "F", 8)] * 4
    assert len(set(hop[4:])) == 1 and hop[4] > hop[3]
    link = problem.network.link_between("mcu", "mesh1")
    assert link is not None  # 8 * 8 * out_bytes / (bandwidth / 4) + latency
    assert hop[4] == pytest.approx(8 * 8 * problem.model.out_bytes(1) / (link.bandwidth / 4)
                                   + link.latency)
    last = [conditions.seconds(4, "B", 8, it, 0) for it in range(9)]
    assert last[6] > last[5] == last[7]
    assert conditions.seconds(2, "F", 8, 8, 0) == _planned(problem, plan, 2, "F", 8)


def test_a_departed_relay_still_has_durations(dual) -> None:
    problem, plan = dual
    script = parse_network_events([{"iteration": 2, "node_leaves": "pi1"}])
    conditions = Conditions(problem, plan, script)
    assert conditions.seconds(3, "F", 8, 5, 0) == _planned(problem, plan, 3, "F", 8)


def test_jitter_is_bounded_seeded_and_per_micro_batch(dual) -> None:
    problem, plan = dual
    script = parse_network_events([
        {"iteration": 0, "link": ["mesh1", "mcu"], "jitter": 0.3},
        {"iteration": 0, "node": "pi2", "jitter": 0.1},
    ])
    a, b = Conditions(problem, plan, script, seed=5), Conditions(problem, plan, script, seed=5)
    other = Conditions(problem, plan, script, seed=6)
    for step, x in ((1, 0.3), (4, 0.1)):
        for kind in ("F", "B"):
            base = _planned(problem, plan, step, kind, 8)
            ratios = [a.seconds(step, kind, 8, it, mb) / base
                      for it in range(5) for mb in range(40)]
            assert all(1 - x <= r <= 1 + x for r in ratios)
            assert min(ratios) < 1 - x / 2 and max(ratios) > 1 + x / 2  # it spreads
            assert len(set(ratios)) > 190  # differs across micro-batches and iterations
            assert [b.seconds(step, kind, 8, it, mb) / base for it in range(5)
                    for mb in range(40)] == ratios  # same key, same value
            assert [other.seconds(step, kind, 8, it, mb) / base for it in range(5)
                    for mb in range(40)] != ratios
    # Steps without jitter are left exact.
    for step in (0, 2, 3):
        assert a.seconds(step, "F", 8, 3, 7) == _planned(problem, plan, step, "F", 8)


def test_departure_fault(dual) -> None:
    problem, plan = dual
    topology = build_topology(problem, plan)
    script = parse_network_events([{"iteration": 6, "node_leaves": "pi2"},
                                   {"iteration": 3, "node_leaves": "mesh1"}])
    conditions = Conditions(problem, plan, script)
    assert conditions.departure_fault("pi2", topology, 0) == FaultSpec("kill", "pi2", 6, "F")
    assert conditions.departure_fault("pi2", topology, 6) == FaultSpec("kill", "pi2", 6, "F")
    # A run resumed after the departure kills the node at once.
    assert conditions.departure_fault("pi2", topology, 9) == FaultSpec("kill", "pi2", 9, "F")
    assert conditions.departure_fault("mesh1", topology, 0) == FaultSpec("kill", "mesh1", 3,
                                                                         "relay")
    assert conditions.departure_fault("mcu", topology, 0) is None
    assert conditions.departure_fault("pi1", topology, 0) is None


def test_pickling_drops_the_cache_and_still_works(dual) -> None:
    problem, plan = dual
    script = parse_network_events([{"iteration": 2, "link": ["mcu", "mesh1"],
                                    "bandwidth_factor": 0.5, "jitter": 0.2}])
    conditions = Conditions(problem, plan, script, seed=11)
    before = [conditions.seconds(step, kind, 8, it, 1) for step in range(5)
              for kind in ("F", "B") for it in range(4)]
    assert len(conditions._steps) == 2  # the nominal network, and the faded one
    assert conditions.__getstate__()["_steps"] == {}
    copy = pickle.loads(pickle.dumps(conditions))
    assert copy._steps == {} and len(conditions._steps) == 2
    assert [copy.seconds(step, kind, 8, it, 1) for step in range(5)
            for kind in ("F", "B") for it in range(4)] == before
