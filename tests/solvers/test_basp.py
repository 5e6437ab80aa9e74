"""BASP against path enumeration, and the decision graph against the planner."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest

from pipesl.cost import evaluate, objective
from pipesl.exceptions import InfeasibleError
from pipesl.plan import validate_plan
from pipesl.solvers import bottleneck_aware_shortest_path, solve
from pipesl.solvers.basp import path_objective
from pipesl.solvers.decision_graph import build_decision_graph, plan_from_path
from strategies import random_plan, random_problem


def _random_dag(seed: int) -> nx.DiGraph:
    r = random.Random(seed)
    n = r.randint(3, 9)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for u in range(n):
        for v in range(n):
            if u != v and r.random() < 0.35:
                g.add_edge(u, v, weight=r.choice([0.0, 1.0, 2.0, r.uniform(0, 10)]),
                           load=r.uniform(0, 10))
    return g


@pytest.mark.parametrize("seed", range(200))
def test_basp_equals_enumeration(seed: int) -> None:
    g = _random_dag(seed)
    lam = random.Random(seed).choice([0.0, 1.0, 3.0, 31.0])
    target = len(g) - 1
    paths = list(nx.all_simple_paths(g, 0, target))
    if not paths:
        with pytest.raises(nx.NetworkXNoPath):
            bottleneck_aware_shortest_path(g, 0, target, lam)
        return
    for bw in (None, "load"):
        best = min(path_objective(g, p, lam, "weight", bw) for p in paths)
        r = bottleneck_aware_shortest_path(g, 0, target, lam, bottleneck_weight=bw)
        assert r.value == pytest.approx(best, abs=1e-12)
        assert path_objective(g, r.path, lam, "weight", bw) == pytest.approx(r.value, abs=1e-12)
        assert r.path[0] == 0 and r.path[-1] == target


def test_basp_prunes_thresholds() -> None:
    g = nx.DiGraph()
    for i in range(20):
        g.add_edge("s", i, weight=float(i), load=float(i))
        g.add_edge(i, "t", weight=0.0, load=0.0)
    r = bottleneck_aware_shortest_path(g, "s", "t", lam=1.0)
    assert r.path == ["s", 0, "t"] and r.value == 0.0
    assert r.thresholds_pruned > 0 and r.dijkstra_runs < 20


def test_basp_rejects_negative_weights() -> None:
    g = nx.DiGraph()
    g.add_edge(0, 1, weight=-1.0)
    with pytest.raises(ValueError, match="negative"):
        bottleneck_aware_shortest_path(g, 0, 1, 1.0)


@pytest.mark.parametrize("seed", range(60))
def test_decision_graph_paths_are_plans(seed: int) -> None:
    """BASP on the decision graph: its path decodes to a valid plan; its value is a lower bound
    of the exact optimum at the same b, reached when the plan shares no link."""
    try:
        problem = random_problem(seed, n_nodes=2 + seed % 4, n_layers=1 + seed % 4,
                                 batch_size=[4, 16, 33][seed % 3], micro_batch_size=None,
                                 memory="unbounded")
    except InfeasibleError:
        pytest.skip("isolated source")
    b = 1 + seed % problem.training.batch_size
    g, s, t = build_decision_graph(problem, b)
    lam = -(-problem.training.batch_size // b) - 1
    r = bottleneck_aware_shortest_path(g, s, t, lam, bottleneck_weight="load")
    plan = plan_from_path(problem, g, r.path)
    assert plan.micro_batch_size == b
    exact = solve(problem, micro_batch_size=b, objective="analytic")
    assert r.value <= exact.objective_s * (1 + 1e-9)
    try:
        validate_plan(problem, plan)
    except Exception:
        return  # reused a node non-consecutively: the relaxation at work
    # Each hop priced alone: equal to SPEC's T when no resource is shared.
    if objective(problem, plan) == pytest.approx(r.value, rel=1e-9):
        assert exact.objective_s == pytest.approx(r.value, rel=1e-9)


def _path_of(problem, plan):
    """The decision-graph vertices a plan visits (see decision_graph's module docstring)."""
    idx = problem.network.node_index
    path = []
    for k, stage in enumerate(plan.stages):
        n = idx[stage.node]
        path += [("arr", stage.first_layer - 1, n), ("dep", stage.last_layer, n)]
        route = plan.routes[k] if k < len(plan.routes) else plan.label_route
        if route is not None and len(route) > 1:
            path += [("via", stage.last_layer, idx[u], n) for u in route]
    return [*path, "end"]


@pytest.mark.parametrize("seed", range(40))
def test_decision_graph_edges_come_from_cost(seed: int) -> None:
    """A plan's path through the decision graph sums to cost.py's first-micro-batch time, and
    its edges keep the affine form alpha * b + beta."""
    try:
        problem = random_problem(seed, n_nodes=3 + seed % 3, n_layers=3, memory="unbounded",
                                 routing="optimize")
    except InfeasibleError:
        pytest.skip("isolated source")
    plan = random_plan(seed, problem)
    g, s, t = build_decision_graph(problem, plan.micro_batch_size)
    path = _path_of(problem, plan)
    assert path[0] == s and path[-1] == t
    assert nx.is_path(g, path)
    weights = [g.edges[a, b]["weight"] for a, b in itertools.pairwise(path)]
    assert sum(weights) == pytest.approx(evaluate(problem, plan).first_micro_batch_s, rel=1e-12)
    decoded = plan_from_path(problem, g, path)
    assert (decoded.stages, decoded.all_routes(), decoded.micro_batch_size) == \
        (plan.stages, plan.all_routes(), plan.micro_batch_size)
    for _, _, data in g.edges(data=True):
        assert data["weight"] == pytest.approx(data["alpha"] * plan.micro_batch_size
                                               + data["beta"], rel=1e-12, abs=1e-15)
