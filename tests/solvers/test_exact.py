"""The exact planner against exhaustive enumeration on seeded random problems.

Contract (looped over every instance): the plan is valid and fits in memory, its objective is
what cost.py re-evaluates, it claims optimality with lower bound = objective, and it equals the
brute-force optimum over every plan, route and micro-batch size — or both find no plan.
"""

from __future__ import annotations

import math

import pytest

from pipesl.cost import evaluate
from pipesl.exceptions import InfeasibleError
from pipesl.plan import validate_plan
from pipesl.solvers import solve
from strategies import TOPOLOGIES, memory_starved, random_problem


def check_result(problem, result) -> None:
    """The contract every solver result meets."""
    validate_plan(problem, result.plan)
    ev = evaluate(problem, result.plan)
    assert ev.feasible, ev.violations
    assert result.objective_s == pytest.approx(ev.objective_s, rel=1e-12)
    assert result.lower_bound_s <= result.objective_s * (1 + 1e-12)
    fixed = problem.training.micro_batch_size
    if fixed is not None:
        assert result.micro_batch_size == fixed


def both(problem, **kwargs):
    """(exact, bruteforce) results, or (None, None) when both report infeasible."""
    try:
        brute = solve(problem, "bruteforce", **kwargs, objective="analytic")
    except InfeasibleError:
        brute = None
    try:
        exact = solve(problem, "exact", **kwargs, objective="analytic")
    except InfeasibleError:
        exact = None
    assert (brute is None) == (exact is None), (brute, exact)
    return exact, brute


def _instance(seed: int, **kwargs):
    kwargs.setdefault("n_nodes", 2 + seed % 5)
    kwargs.setdefault("n_layers", 1 + seed % 5)
    kwargs.setdefault("batch_size", [1, 2, 7, 16, 32, 64][seed % 6])
    try:
        return random_problem(seed, **kwargs)
    except InfeasibleError:
        pytest.skip("generator drew a problem whose source is isolated and too small")


@pytest.mark.parametrize("seed", range(120))
def test_exact_equals_bruteforce(seed: int) -> None:
    problem = _instance(seed)
    exact, brute = both(problem)
    if exact is None:
        return
    check_result(problem, exact)
    assert exact.optimal and exact.status == "optimal"
    assert exact.lower_bound_s == pytest.approx(exact.objective_s)
    assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("topology", ["star", "ring"])
def test_shared_links_and_ushape(seed: int, topology: str) -> None:
    """Stars share the hub's links between routes; U-shape adds the label route."""
    problem = _instance(1000 + seed, topology=topology, n_nodes=3 + seed % 4,
                        labels=["none", "source", "any"][seed % 3], routing="optimize")
    exact, brute = both(problem)
    if exact is None:
        return
    check_result(problem, exact)
    assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_memory_bound_1f1b(seed: int) -> None:
    problem = _instance(2000 + seed, schedule="1f1b", memory="tight", micro_batch_size=None)
    exact, brute = both(problem)
    if exact is None:
        return
    check_result(problem, exact)
    assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_fixed_micro_batch_option(seed: int) -> None:
    problem = _instance(3000 + seed, micro_batch_size=None)
    b = 1 + seed % problem.training.batch_size
    exact, brute = both(problem, micro_batch_size=b)
    if exact is None:
        return
    check_result(problem, exact)
    assert exact.micro_batch_size == b
    assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


def test_topologies_are_all_covered() -> None:
    assert {"line", "star", "ring", "mesh"} <= set(TOPOLOGIES)


def test_infeasible_problem_names_memory() -> None:
    problem = _instance(7, n_nodes=3, n_layers=3, memory="tight")
    small = memory_starved(problem)
    if all(x.param_bytes == 0 and x.act_bytes == 0 for x in problem.model.layers):
        pytest.skip("model needs no memory")
    with pytest.raises(InfeasibleError, match="memory"):
        solve(small, objective="analytic")


def test_objective_is_finite_and_positive_on_builtins() -> None:
    from pipesl.problem import load_problem

    for name in ("edge-campus", "star-hub", "relay-line", "mesh"):
        problem = load_problem(name)
        result = solve(problem, objective="analytic")
        check_result(problem, result)
        assert result.optimal
        assert math.isfinite(result.objective_s) and result.objective_s > 0


def _slow_source(problem, factor: float = 1e-3):
    """The same problem with a much slower source, so that offloading (and routes) pay."""
    from dataclasses import replace

    from pipesl.problem import validate_problem

    nodes = tuple(replace(n, flops=n.flops * factor) if n.id == problem.training.source else n
                  for n in problem.network.nodes)
    return validate_problem(replace(problem, network=replace(problem.network, nodes=nodes)))


@pytest.mark.parametrize("seed", range(40))
def test_offloading_through_a_shared_hub(seed: int) -> None:
    """Slow source, star around a hub: the optimum offloads and routes share hub links."""
    problem = _slow_source(_instance(4000 + seed, topology="star", n_nodes=4 + seed % 3,
                                     n_layers=2 + seed % 4, memory="unbounded",
                                     labels=["none", "source"][seed % 2]))
    exact, brute = both(problem)
    assert exact is not None
    check_result(problem, exact)
    assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


def test_repaired_relaxations_are_exact() -> None:
    """Instances where the relaxed DP's plan was invalid — it reused a node or overloaded a
    shared link — and branch and bound or A* had to repair it: still equal to enumeration.
    Seeds are scanned until 15 instances of each kind have been checked. The DP already rules
    out A -> B -> A, so node reuse (longer cycles) is rare in problems small enough to
    enumerate: :func:`test_memory_bound_chain_needs_branching` covers it by construction."""
    kinds = {"branches": 0, "searches": 0}
    checked = 0
    for seed in range(600):
        topology = ["star", "ring", "mesh"][seed % 3]
        try:
            problem = _slow_source(random_problem(
                7000 + seed, n_nodes=4 + seed % 3, n_layers=2 + seed % 4, topology=topology,
                memory=["tight", "unbounded"][seed % 2], batch_size=[8, 32][seed % 2],
                labels=["none", "source"][seed % 2], routing="optimize"))
            exact = solve(problem, objective="analytic")
        except InfeasibleError:
            continue
        used = [k for k in kinds if exact.counters[k] > 0]
        if not used or all(kinds[k] >= 15 for k in used):
            continue
        brute = solve(problem, "bruteforce", objective="analytic")
        check_result(problem, exact)
        assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9), seed
        for k in used:
            kinds[k] += 1
        checked += 1
        if all(v >= 15 for v in kinds.values()):
            break
    assert kinds["searches"] >= 15, kinds


def _memory_bound_chain(n_layers: int, duplex: str, labels: bool, slow: int):
    """Three fast servers and ``slow`` slow ones around a hub, every node holding two layers:
    the relaxation cycles src, f0, f1, f2, f0, ... and must be branched on."""
    from pipesl.problem import (
        ChainModel,
        Layer,
        Link,
        Network,
        Node,
        Problem,
        TrainingSpec,
        validate_problem,
    )

    nodes = [Node("src", flops=1e9, memory=4.5e8, overhead=1e-3)]
    nodes += [Node(f"fast{i}", flops=1e13, memory=7e8, overhead=1e-4) for i in range(3)]
    nodes += [Node(f"slow{i}", flops=1e12, memory=7e8, overhead=1e-4) for i in range(slow)]
    nodes += [Node("hub", compute=False)]
    links = [Link(n.id, "hub", bandwidth=1e10, latency=1e-4, duplex=duplex)
             for n in nodes[:-1]]
    layers = tuple(Layer(f"l{i}", 1e9, 2e9, 1e5, 1e8, 1e3) for i in range(n_layers))
    training = TrainingSpec("src", 8, labels_at="src" if labels else None)
    return validate_problem(Problem(Network(tuple(nodes), tuple(links)),
                                    ChainModel("chain", 1e4, layers), training))


@pytest.mark.parametrize("n_layers", [8, 9])
@pytest.mark.parametrize("duplex", ["full", "half"])
@pytest.mark.parametrize("labels", [False, True])
def test_memory_bound_chain_needs_branching(n_layers: int, duplex: str, labels: bool) -> None:
    problem = _memory_bound_chain(n_layers, duplex, labels, slow=2)
    exact, brute = both(problem)
    assert exact is not None
    check_result(problem, exact)
    assert exact.counters["branches"] > 0
    assert exact.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


def test_hard_evaluations_hand_b_to_the_milp(monkeypatch) -> None:
    """When branch and bound runs out of budget the b goes to the MILP; still exact."""
    import pipesl.solvers.exact as exact_module

    monkeypatch.setattr(exact_module, "_BUDGET", 1)
    monkeypatch.setattr(exact_module, "_MILP_AFTER", 1)
    problem = _memory_bound_chain(9, "half", False, slow=2)
    result = solve(problem, objective="analytic")
    assert result.counters["milp"] > 0 and result.optimal
    check_result(problem, result)
    brute = solve(problem, "bruteforce", objective="analytic")
    assert result.objective_s == pytest.approx(brute.objective_s, rel=1e-9)


@pytest.mark.slow
def test_memory_bound_resnet_instance_is_proven() -> None:
    """The instance the experiments found hard (ResNet-50, 1 GiB servers): proven optimal, equal
    to the MILP at its micro-batch size."""
    from pipesl.experiments.suite import default_config
    from pipesl.experiments.sweeps import point_problem

    problem = point_problem(default_config("memory"), 1.0, 1)
    result = solve(problem, time_limit=600, objective="analytic")
    assert result.optimal
    milp = solve(problem, "milp", micro_batch_size=result.micro_batch_size, objective="analytic")
    assert result.objective_s == pytest.approx(milp.objective_s, rel=1e-6)
