"""The MILP (scipy/HiGHS) against the exact planner and exhaustive enumeration.

The three share nothing but cost.py, so agreement on seeded random instances — stars whose hub
links carry several routes, rings, U-shaped label routes, 1F1B memory windows, min-hop routing
— is an independent check of all three.
"""

from __future__ import annotations

import pytest

from pipesl.cost import evaluate
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.plan import validate_plan
from pipesl.solvers import solve
from pipesl.solvers.bruteforce import solve_bruteforce
from pipesl.solvers.milp import build_milp, solve_milp_for_b
from strategies import random_problem


def _instance(seed: int, **kwargs):
    kwargs.setdefault("n_nodes", 2 + seed % 5)
    kwargs.setdefault("n_layers", 1 + seed % 5)
    kwargs.setdefault("batch_size", [1, 2, 7, 16, 32][seed % 5])
    try:
        return random_problem(seed, **kwargs)
    except InfeasibleError:
        pytest.skip("generator drew an isolated source")


def _three(problem, b: int | None):
    """(milp, exact, bruteforce) at b, or Nones when all three report infeasible.

    Enumeration is skipped (its result is the exact one) beyond 3000 placements.
    """
    out = []
    for method in ("milp", "exact", "bruteforce"):
        try:
            if method == "bruteforce":
                out.append(solve_bruteforce(problem, micro_batch_size=b, max_plans=3000))
            else:
                out.append(solve(problem, method, micro_batch_size=b, objective="analytic"))
        except InfeasibleError:
            out.append(None)
        except ProblemError:  # too many plans to enumerate
            out.append(out[1])
    assert len({r is None for r in out}) == 1, out
    return out


def _check(problem, result) -> None:
    validate_plan(problem, result.plan)
    ev = evaluate(problem, result.plan)
    assert ev.feasible, ev.violations
    assert result.objective_s == pytest.approx(ev.objective_s, rel=1e-12)


@pytest.mark.parametrize("seed", range(80))
def test_milp_equals_exact_and_bruteforce(seed: int) -> None:
    problem = _instance(seed, micro_batch_size=None)
    b = 1 + (seed * 7) % problem.training.batch_size
    milp, exact, brute = _three(problem, b)
    if milp is None:
        return
    _check(problem, milp)
    assert milp.optimal and milp.status == "optimal"
    assert milp.micro_batch_size == b
    assert milp.objective_s == pytest.approx(exact.objective_s, rel=1e-6)
    assert milp.objective_s == pytest.approx(brute.objective_s, rel=1e-6)


def _slow_source_star(seed: int):
    from dataclasses import replace

    from pipesl.problem import validate_problem

    base = _instance(500 + seed, topology="star", n_nodes=4 + seed % 3, n_layers=2 + seed % 3,
                     memory="unbounded", routing="optimize", micro_batch_size=None,
                     labels=["none", "source"][seed % 2], schedule=["gpipe", "1f1b"][seed % 2])
    nodes = tuple(replace(n, flops=n.flops * 1e-3) if n.id == "dev0" else n
                  for n in base.network.nodes)
    return validate_problem(replace(base, network=replace(base.network, nodes=nodes)))


@pytest.mark.parametrize("seed", range(24))
def test_milp_shared_hub_links(seed: int) -> None:
    """A slow source in a star: routes (and the U-shaped label route) share the hub's links."""
    problem = _slow_source_star(seed)
    b = max(1, problem.training.batch_size // 2)
    milp, exact, brute = _three(problem, b)
    assert milp is not None
    _check(problem, milp)
    assert milp.objective_s == pytest.approx(exact.objective_s, rel=1e-6)
    assert milp.objective_s == pytest.approx(brute.objective_s, rel=1e-6)


def test_shared_hub_cases_really_share_links() -> None:
    from pipesl.cost import plan_stages

    shared = 0
    for seed in range(24):
        problem = _slow_source_star(seed)
        result = solve(problem, "milp", objective="analytic",
                       micro_batch_size=max(1, problem.training.batch_size // 2))
        hops = [frozenset(s.hop) for s in plan_stages(problem, result.plan) if s.kind == "hop"]
        shared += len(set(hops)) < len(hops)
    assert shared >= 5, shared


@pytest.mark.parametrize("seed", range(16))
def test_milp_memory_windows_and_min_hop_routes(seed: int) -> None:
    problem = _instance(900 + seed, memory="tight", micro_batch_size=None,
                        schedule=["1f1b", "gpipe"][seed % 2],
                        routing=["shortest", "optimize"][seed // 2 % 2])
    b = 1 + seed % problem.training.batch_size
    milp, exact, _ = _three(problem, b)
    if milp is None:
        return
    _check(problem, milp)
    assert milp.objective_s == pytest.approx(exact.objective_s, rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_milp_joint_over_all_micro_batch_sizes(seed: int) -> None:
    problem = _instance(1300 + seed, micro_batch_size=None, batch_size=[4, 8, 12][seed % 3])
    try:
        exact = solve(problem, "exact", objective="analytic")
    except InfeasibleError:
        with pytest.raises(InfeasibleError):
            solve(problem, "milp", objective="analytic")
        return
    milp = solve(problem, "milp", objective="analytic")
    _check(problem, milp)
    assert milp.objective_s == pytest.approx(exact.objective_s, rel=1e-6)
    assert milp.counters["programs"] >= 1


def test_milp_time_limit_returns_a_valid_plan_or_infeasible() -> None:
    from pipesl.problem import load_problem

    problem = load_problem("edge-campus")
    try:
        result = solve(problem, "milp", micro_batch_size=16, time_limit=0.05, objective="analytic")
    except InfeasibleError as exc:
        assert "time limit" in str(exc)
        return
    _check(problem, result)
    assert result.lower_bound_s <= result.objective_s * (1 + 1e-9)
    assert result.status in ("optimal", "time_limit")


def test_milp_size_and_outcome_fields() -> None:
    problem = _instance(3, n_nodes=4, n_layers=3, batch_size=8, micro_batch_size=None,
                        memory="unbounded")
    prog = build_milp(problem, 2)
    assert prog.num_vars > 0 and len(prog.row_lb) > 0
    out = solve_milp_for_b(problem, 2)
    assert out.status == 0 and out.plan is not None
    assert out.bound_s == pytest.approx(out.value_s)


def test_milp_rejects_bad_micro_batch_size() -> None:
    problem = _instance(3, n_nodes=3, n_layers=2, batch_size=8, micro_batch_size=None)
    with pytest.raises(ProblemError, match="micro_batch_size"):
        solve(problem, "milp", micro_batch_size=9, objective="analytic")
