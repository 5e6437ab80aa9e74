"""Every lower bound the exact planner prunes with is below the true optimum (brute force).

If one of these silently stopped being a bound, ``exact`` would still report "optimal"; only
an exhaustive check on small instances notices. For each random instance and each b the
planner considers, every structurally valid plan that fits in memory is enumerated
(:func:`pipesl.solvers.bruteforce.enumerate_plans`) and its S (first micro-batch's trip),
beta (largest resource load) and T are computed by :func:`pipesl.cost.evaluate`; each named
bound must not exceed the least of them.
"""

from __future__ import annotations

import pytest

from pipesl.cost import CostTables, evaluate
from pipesl.cost.analytic_bounds import AnalyticBounds
from pipesl.exceptions import InfeasibleError
from pipesl.solvers import solve
from pipesl.solvers.bruteforce import enumerate_plans
from pipesl.solvers.microbatch import candidate_micro_batch_sizes
from strategies import random_problem

TOL = 1e-9

BOUNDS = {
    # name: (bound at b, which optimum it bounds)
    "source_cut_sum": (lambda bd, b: bd.sum_lb(b), "S"),
    "source_cut_beta": (lambda bd, b: bd.source_cut_beta(b), "beta"),
    "every_layer_runs": (lambda bd, b: bd.single_layer_beta(b), "beta"),
    "beta_lb": (lambda bd, b: bd.beta_lb(b), "beta"),
    "objective_lb": (lambda bd, b: bd.objective_lb(b), "T"),
}


def _instances() -> list[tuple[int, dict]]:
    out = []
    for seed in range(60):
        out.append((seed, {"n_nodes": 2 + seed % 4, "n_layers": 1 + seed % 4,
                           "batch_size": 4 + seed % 9, "micro_batch_size": None,
                           "schedule": ("gpipe", "1f1b", "1f1b-net")[seed % 3]}))
    return out


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_named_bound_is_below_the_brute_force_optimum(name: str) -> None:
    bound, target = BOUNDS[name]
    checked = 0
    for seed, kwargs in _instances():
        problem = random_problem(seed, **kwargs)
        bounds = AnalyticBounds(problem, CostTables.from_problem(problem))
        for b in candidate_micro_batch_sizes(problem.training.batch_size):
            best = {"S": float("inf"), "beta": float("inf"), "T": float("inf")}
            for plan in enumerate_plans(problem, b):
                ev = evaluate(problem, plan)
                if not ev.feasible:
                    continue
                best["S"] = min(best["S"], ev.first_micro_batch_s)
                best["beta"] = min(best["beta"], ev.bottleneck_s)
                best["T"] = min(best["T"], ev.objective_s)
            if best["T"] == float("inf"):
                continue
            value = bound(bounds, b)
            assert value <= best[target] * (1 + TOL), (name, seed, b, value, best[target])
            checked += 1
    assert checked >= 24  # the instances are not all infeasible


def test_exact_optimum_equals_brute_force_on_the_same_instances() -> None:
    """The bounds above are what let ``exact`` stop; its answer is the brute-force optimum."""
    for seed, kwargs in _instances()[:12]:
        problem = random_problem(seed, **kwargs)
        try:
            brute = solve(problem, "bruteforce", objective="analytic")
        except InfeasibleError:
            with pytest.raises(InfeasibleError):
                solve(problem, "exact", objective="analytic")
            continue
        exact = solve(problem, "exact", objective="analytic")
        assert exact.optimal
        assert exact.objective_s <= brute.objective_s * (1 + 1e-9), seed
        assert exact.objective_s >= brute.objective_s * (1 - 1e-9), seed
