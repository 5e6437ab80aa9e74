"""pipesl replan: the changed problem's optimum, the migration, and a consistent decision."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from pipesl.adapt import migration_for, replan
from pipesl.cost import bulk_transfer_seconds, evaluate
from pipesl.exceptions import InfeasibleError
from pipesl.plan import Plan, Stage
from pipesl.problem import Network, dump_problem, load_problem, validate_problem
from pipesl.solvers import solve
from strategies import random_problem


def _faded(problem, factor: float, which: int = 0):
    links = list(problem.network.links)
    links[which % len(links)] = replace(links[which % len(links)],
                                        bandwidth=links[which % len(links)].bandwidth * factor)
    return validate_problem(replace(problem, network=replace(problem.network,
                                                             links=tuple(links))))


def _without(problem, node: str):
    net = problem.network
    return validate_problem(replace(problem, network=Network(
        tuple(n for n in net.nodes if n.id != node),
        tuple(e for e in net.links if node not in (e.source, e.target)))))


@pytest.mark.parametrize("seed", range(40))
def test_replan_reaches_the_changed_optimum_and_decides_consistently(seed: int) -> None:
    try:
        problem = random_problem(seed, n_nodes=3 + seed % 4, n_layers=2 + seed % 4,
                                 memory="unbounded", micro_batch_size=None)
        old = solve(problem, objective="analytic").plan
    except InfeasibleError:
        pytest.skip("infeasible draw")
    changed = _faded(problem, [0.05, 0.5, 3.0][seed % 3], seed)
    horizon = [0, 1, 10, 1000][seed % 4]
    decision = replan(changed, old, horizon)
    assert decision.new.objective_s == pytest.approx(
        solve(changed, objective="analytic").objective_s, rel=1e-9)
    assert decision.old is not None  # only bandwidth changed: the old plan is still valid
    assert decision.old.objective_s == pytest.approx(evaluate(changed, old).objective_s)
    gain = decision.old.objective_s - decision.new.objective_s
    assert decision.gain_per_iteration_s == pytest.approx(gain)
    assert gain >= -1e-9 * decision.old.objective_s  # the new plan is optimal
    expected = gain > 0 and gain * horizon > decision.migration.seconds
    assert decision.switch == expected


def test_node_departure_forces_a_switch_and_restores_from_the_source() -> None:
    problem = load_problem("edge-campus")
    old = solve(problem, objective="analytic").plan
    gone = old.stages[-1].node
    changed = _without(problem, gone)
    decision = replan(changed, old, horizon=0)
    assert decision.switch and decision.old is None and gone in decision.old_invalid_reason
    assert all(s.node != gone for s in decision.new.plan.stages)
    # Every layer the departed node ran is restored from the source's checkpoint.
    moved = {layer for layers in decision.migration.layers.values() for layer in layers}
    lost = set(range(old.stages[-1].first_layer, old.stages[-1].last_layer + 1))
    assert lost <= moved
    assert all(t.source == problem.training.source for t in decision.migration.transfers
               if set(decision.migration.layers[(t.source, t.target)]) & lost)


def test_migration_bytes_and_time_by_hand() -> None:
    problem = load_problem("examples/tiny-line.yaml")  # src - r - srv, 4 layers
    old = Plan((Stage("src", 1, 2), Stage("srv", 3, 4)), (("src", "r", "srv"),), 2)
    new = Plan((Stage("src", 1, 3), Stage("srv", 4, 4)), (("src", "r", "srv"),), 2)
    m = migration_for(problem, old, new, state_bytes_factor=2.0)
    # Layer 3 (4000 param bytes) moves srv -> src: 2 x 4000 = 8000 bytes, over two hops:
    # r-srv full duplex 80 Mbit/s, no latency; src-r 1 Mbit/s + 1 ms (tiny-line.yaml).
    assert m.layers == {("srv", "src"): (3,)}
    assert m.total_bytes == 8000.0
    expected = 8 * 8000 / 8e7 + 0.0 + 8 * 8000 / 1e6 + 1e-3
    assert m.seconds == pytest.approx(expected)
    assert bulk_transfer_seconds(problem, ("srv", "r", "src"), 8000.0) == pytest.approx(expected)


def test_cli_replan_json(tmp_path) -> None:
    problem = load_problem("edge-campus")
    plan_file = tmp_path / "old.json"
    result = subprocess.run([sys.executable, "-m", "pipesl", "plan", "edge-campus", "--json",
                             "--out", str(plan_file)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    changed = tmp_path / "changed.yaml"
    dump_problem(_without(problem, json.loads(plan_file.read_text())["stages"][-1]["node"]),
                 changed)
    result = subprocess.run([sys.executable, "-m", "pipesl", "replan", str(changed), "--plan",
                             str(plan_file), "--horizon", "5", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["switch"] is True and doc["old_valid"] is False
    assert doc["new_objective_s"] == pytest.approx(doc["plan"]["objective_s"])
    assert doc["migration"]["total_bytes"] > 0


def test_cli_replan_bad_plan_exits_1(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{\"stages\": 3}")
    result = subprocess.run([sys.executable, "-m", "pipesl", "replan", "edge-campus", "--plan",
                             str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
