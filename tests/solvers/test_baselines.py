"""Baselines: valid plans, never better than the exact optimum, each optimal for its own family.

One contract is looped over every baseline on seeded random instances (validator style): the
plan is valid and fits in memory, its objective is what cost.py recomputes, T >= the exact
optimum, and ``optimal`` is never claimed for a restricted family that lost something. The
restricted-exact baselines are checked against exhaustive enumeration of their own family.
"""

from __future__ import annotations

import math

import pytest

from pipesl.cost import evaluate, plan_stages, resource_loads
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.plan import validate_plan
from pipesl.solvers import solve, solver_names
from pipesl.solvers.bruteforce import enumerate_plans
from pipesl.solvers.microbatch import objective_curve
from strategies import memory_starved, random_problem

BASELINES = ("no_pipeline", "fixed_b", "two_tier", "bottleneck_only", "even_split", "greedy",
             "random", "alternating")
REL = 1e-9


def _instance(seed: int, **kwargs):
    kwargs.setdefault("n_nodes", 2 + seed % 5)
    kwargs.setdefault("n_layers", 1 + seed % 5)
    kwargs.setdefault("batch_size", [1, 2, 7, 16, 32, 64][seed % 6])
    try:
        return random_problem(seed, **kwargs)
    except InfeasibleError:
        pytest.skip("generator drew an isolated source")


def _check(problem, result, method: str) -> None:
    validate_plan(problem, result.plan)
    ev = evaluate(problem, result.plan)
    assert ev.feasible, (method, ev.violations)
    assert result.objective_s == pytest.approx(ev.objective_s, rel=1e-12)
    assert result.method == method
    assert result.lower_bound_s <= result.objective_s * (1 + 1e-12)
    assert result.status in ("optimal", "restricted_optimal", "heuristic", "feasible")


def test_every_baseline_is_registered() -> None:
    assert set(BASELINES) | {"milp"} <= set(solver_names())


@pytest.mark.parametrize("seed", range(60))
def test_exact_is_never_worse_than_a_baseline(seed: int) -> None:
    problem = _instance(seed, micro_batch_size=None)
    try:
        exact = solve(problem, "exact", objective="analytic")
    except InfeasibleError:
        exact = None
    for method in BASELINES:
        try:
            result = solve(problem, method, objective="analytic")
        except InfeasibleError:
            continue  # heuristics may fail where a plan exists; see the next test
        assert exact is not None, f"{method} found a plan where exact found none"
        _check(problem, result, method)
        assert result.objective_s >= exact.objective_s * (1 - REL), method
        if result.optimal:
            assert result.objective_s == pytest.approx(exact.objective_s, rel=1e-9), method


@pytest.mark.parametrize("seed", range(40))
def test_exact_baselines_raise_only_when_exact_does(seed: int) -> None:
    """Restricted-exact baselines whose family always contains a plan when one exists."""
    problem = _instance(100 + seed, memory="tight", micro_batch_size=None)
    try:
        solve(problem, "exact", objective="analytic")
    except InfeasibleError:
        for method in BASELINES:
            with pytest.raises(InfeasibleError):
                solve(problem, method, objective="analytic")
        return
    for method in ("bottleneck_only", "alternating"):
        _check(problem, solve(problem, method, objective="analytic"), method)


@pytest.mark.parametrize("seed", range(30))
def test_no_pipeline_and_fixed_b_are_optimal_for_their_b(seed: int) -> None:
    problem = _instance(200 + seed, micro_batch_size=None)
    B = problem.training.batch_size
    b = max(1, -(-B // 4))
    for method, size in (("no_pipeline", B), ("fixed_b", b)):
        try:
            brute = solve(problem, "bruteforce", micro_batch_size=size, objective="analytic")
        except InfeasibleError:
            with pytest.raises(InfeasibleError):
                solve(problem, method, objective="analytic")
            continue
        result = solve(problem, method, objective="analytic")
        _check(problem, result, method)
        assert result.micro_batch_size == size
        assert result.objective_s == pytest.approx(brute.objective_s, rel=1e-9)
        assert result.status in ("restricted_optimal", "optimal")


def test_fixed_b_option_and_default() -> None:
    problem = _instance(7, n_nodes=4, n_layers=4, batch_size=64, micro_batch_size=None,
                        memory="unbounded")
    assert solve(problem, "fixed_b", objective="analytic").micro_batch_size == 16
    assert solve(problem, "fixed_b", micro_batch_size=5, objective="analytic").micro_batch_size == 5
    with pytest.raises(ProblemError):
        solve(problem, "fixed_b", micro_batch_size=65, objective="analytic")


def _best_in_family(problem, keep) -> float:
    """Least T over every enumerated plan accepted by ``keep`` (every b)."""
    best = math.inf
    for plan in enumerate_plans(problem):
        if keep(plan):
            _, t = objective_curve(problem, plan)
            best = min(best, float(t.min()))
    return best


@pytest.mark.parametrize("seed", range(30))
def test_two_tier_is_the_best_plan_with_at_most_one_server(seed: int) -> None:
    problem = _instance(300 + seed, n_nodes=3 + seed % 4, n_layers=2 + seed % 4,
                        micro_batch_size=None)
    best = _best_in_family(problem, lambda plan: plan.num_stages <= 2)
    if math.isinf(best):
        with pytest.raises(InfeasibleError):
            solve(problem, "two_tier", objective="analytic")
        return
    result = solve(problem, "two_tier", objective="analytic")
    _check(problem, result, "two_tier")
    assert result.plan.num_stages <= 2
    assert result.objective_s == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_bottleneck_only_minimises_the_bottleneck(seed: int) -> None:
    """At its b, no plan has a smaller bottleneck, and none with that bottleneck a smaller S."""
    problem = _instance(400 + seed, n_nodes=2 + seed % 4, n_layers=1 + seed % 4,
                        micro_batch_size=None)
    try:
        result = solve(problem, "bottleneck_only", objective="analytic")
    except InfeasibleError:
        return
    _check(problem, result, "bottleneck_only")
    b = result.micro_batch_size

    def costs(plan):
        plan = plan.with_micro_batch_size(b)
        s = sum(st.time(b) for st in plan_stages(problem, plan))
        return max(a(b) for a in resource_loads(problem, plan).values()), s

    mine = costs(result.plan)
    for plan in enumerate_plans(problem, b):
        if evaluate(problem, plan).feasible:
            beta, s = costs(plan)
            assert beta >= mine[0] * (1 - 1e-7)
            if beta <= mine[0] * (1 + 1e-7):
                assert s >= mine[1] * (1 - 1e-7)


def test_bottleneck_only_throughput_criterion_prefers_few_micro_batches() -> None:
    from pipesl.problem import load_problem

    problem = load_problem("edge-campus")
    by_t = solve(problem, "bottleneck_only", objective="analytic")
    by_rate = solve(problem, "bottleneck_only", criterion="throughput", objective="analytic")
    assert by_rate.num_micro_batches <= by_t.num_micro_batches
    assert by_rate.objective_s >= by_t.objective_s * (1 - REL)
    with pytest.raises(ProblemError):
        solve(problem, "bottleneck_only", criterion="fastest", objective="analytic")


@pytest.mark.parametrize("seed", range(20))
def test_even_split_balances_flops_along_one_route(seed: int) -> None:
    problem = _instance(500 + seed, memory="unbounded", n_layers=3 + seed % 5,
                        micro_batch_size=None, labels="none")
    result = solve(problem, "even_split", objective="analytic")
    _check(problem, result, "even_split")
    plan = result.plan
    # the routes chain into one simple path from the source
    path = [plan.stages[0].node]
    for route in plan.routes:
        assert route[0] == path[-1]
        path.extend(route[1:])
    assert len(set(path)) == len(path)
    # every stage but the last has at most its share of FLOPs plus one layer
    layers = problem.model.layers
    total = sum(x.fwd_flops + x.bwd_flops for x in layers)
    done = 0.0
    for k, stage in enumerate(plan.stages[:-1], 1):
        done += sum(x.fwd_flops + x.bwd_flops for x in layers[stage.layer_slice])
        last = layers[stage.last_layer - 1]
        prev = done - (last.fwd_flops + last.bwd_flops)
        assert prev <= total * k / plan.num_stages * (1 + 1e-12) or stage.num_layers == 1


@pytest.mark.parametrize("seed", range(20))
def test_greedy_offloads_to_the_fastest_server(seed: int) -> None:
    problem = _instance(600 + seed, memory="unbounded", n_nodes=3 + seed % 4,
                        n_layers=2 + seed % 4, micro_batch_size=None)
    result = solve(problem, "greedy", objective="analytic")
    _check(problem, result, "greedy")
    net = problem.network
    import networkx as nx

    reach = nx.node_connected_component(net.graph, "dev0")
    servers = [n for n in net.compute_nodes if n.id != "dev0" and n.id in reach]
    fastest = max((n.flops for n in servers), default=0.0)
    if fastest > net.node("dev0").flops:
        assert result.plan.stages[0].last_layer == 1
        assert net.node(result.plan.stages[1].node).flops == fastest
    else:
        assert result.plan.num_stages == 1  # unbounded memory: the source keeps everything


def test_random_is_seeded() -> None:
    problem = _instance(11, n_nodes=6, n_layers=5, memory="unbounded", micro_batch_size=None)
    a = solve(problem, "random", seed=3, objective="analytic")
    b = solve(problem, "random", seed=3, objective="analytic")
    assert a.plan == b.plan
    plans = {solve(problem, "random", seed=s, objective="analytic").plan for s in range(8)}
    assert len(plans) > 1


def test_heuristic_memory_failure_names_the_node() -> None:
    problem = _instance(7, n_nodes=3, n_layers=3, memory="tight")
    small = memory_starved(problem)
    if all(x.param_bytes == 0 and x.act_bytes == 0 for x in problem.model.layers):
        pytest.skip("model needs no memory")
    for method in ("even_split", "greedy"):
        with pytest.raises(InfeasibleError, match="memory"):
            solve(small, method, objective="analytic")
    with pytest.raises(InfeasibleError):
        solve(small, "random", objective="analytic")


def test_builtin_scenarios_headline() -> None:
    """On every built-in scenario pipelining beats no pipelining, and exact <= everything."""
    from pipesl.problem import builtin_names, load_problem

    for name in builtin_names("scenario"):
        problem = load_problem(name)
        if problem.is_multi_owner:  # the joint planner: tests/solvers/test_owners.py
            continue
        exact = solve(problem, objective="analytic")
        flat = solve(problem, "no_pipeline", objective="analytic")
        assert flat.micro_batch_size == problem.training.batch_size
        assert flat.objective_s > exact.objective_s
        for method in BASELINES:
            other = solve(problem, method, objective="analytic")
            assert other.objective_s >= exact.objective_s * (1 - REL)
