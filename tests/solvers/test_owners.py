"""The many-owner planner (issue 18): the joint plan is optimal on small instances
(exhaustive enumeration + the simulator), one owner is today's planner exactly, the heuristic
and the baselines are valid plans with honest bounds."""

from __future__ import annotations

import itertools
import math

import pytest

from owners_cases import random_owners_problem
from pipesl.cost import feasible_micro_batch_sizes
from pipesl.exceptions import ProblemError
from pipesl.plan import OwnersPlan, validate_owners_plan
from pipesl.problem import Problem
from pipesl.sim.owners import simulate_owners
from pipesl.solvers import solve
from pipesl.solvers.bruteforce import enumerate_plans
from pipesl.solvers.owners import solve_owners
from pipesl.solvers.owners_space import owners_plan_fits, server_part


def exhaustive(problem: Problem) -> float:
    """Every owner's every plan at every b = 1..B_o, every combination simulated."""
    per_owner = []
    for o, owner in enumerate(problem.owners):
        single = problem.owner_problem(o)
        cands = []
        for plan in enumerate_plans(single):
            ok = feasible_micro_batch_sizes(single, plan)
            cands += [plan.with_micro_batch_size(b) for b in range(1, owner.batch_size + 1)
                      if ok[b - 1]]
        per_owner.append(cands)
    best = math.inf
    shared = problem.training.replicas == "shared"
    for combo in itertools.product(*per_owner):
        if shared and len({server_part(p) for p in combo}) > 1:
            continue
        if shared and any(s.node in {o.node for o in problem.owners}
                          for s in combo[0].stages[1:]):
            continue
        plan = OwnersPlan(tuple(combo))
        if not owners_plan_fits(problem, plan):
            continue
        best = min(best, simulate_owners(problem, plan).makespan_s)
    return best


CASES = [(seed, 2, 3, 3, "per-owner") for seed in range(6)]
CASES += [(seed, 2, 3, 3, "shared") for seed in range(6, 10)]
CASES += [(seed, 3, 2, 2, "per-owner") for seed in range(10, 12)]
CASES += [(12, 3, 2, 2, "shared")]
CASES += [(seed, 2, 3, 3, "per-owner") for seed in range(13, 19)]


@pytest.mark.parametrize(("seed", "owners", "layers", "batch", "replicas"), CASES)
def test_joint_equals_exhaustive_enumeration(seed: int, owners: int, layers: int, batch: int,
                                             replicas: str) -> None:
    problem = random_owners_problem(seed, owners, layers, batch, replicas)
    reference = exhaustive(problem)
    result = solve_owners(problem, "joint", time_limit=None)
    assert result.optimal
    assert result.makespan_s == pytest.approx(reference, rel=1e-9)
    assert result.lower_bound_s == result.makespan_s
    validate_owners_plan(problem, result.plan)
    # the makespan reported is the simulator's for the plan returned
    assert simulate_owners(problem, result.plan).makespan_s == pytest.approx(result.makespan_s,
                                                                            rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_sequential_mode_joint_equals_exhaustive(seed: int) -> None:
    problem = random_owners_problem(100 + seed, mode="sequential",
                                    replicas="shared" if seed == 2 else "per-owner")
    result = solve_owners(problem, "joint", time_limit=None)
    assert result.optimal
    assert result.makespan_s == pytest.approx(exhaustive(problem), rel=1e-9)


@pytest.mark.parametrize("name", ["edge-campus", "relay-line"])
def test_one_owner_is_todays_planner_exactly(name: str) -> None:
    from pipesl.problem import load_problem

    problem = load_problem(name)
    today = solve(problem, "exact", objective="makespan", time_limit=30)
    for method in ("joint", "heuristic", "independent", "sequential"):
        mine = solve_owners(problem, method, time_limit=30)
        assert mine.plan.plans == (today.plan,)
        assert mine.makespan_s == today.objective_s
        assert mine.optimal == today.optimal
        assert mine.owners[0].makespan_s == today.objective_s


def test_solve_dispatches_on_several_owners() -> None:
    problem = random_owners_problem(3)
    via_solve = solve(problem)
    direct = solve_owners(problem, "joint")
    assert via_solve.makespan_s == direct.makespan_s  # type: ignore[attr-defined]
    with pytest.raises(ProblemError, match="method"):
        solve(problem, "milp")


@pytest.mark.parametrize("seed", range(4))
def test_heuristic_and_baselines_are_valid_with_honest_bounds(seed: int) -> None:
    problem = random_owners_problem(200 + seed, owners=3, layers=3, batch=4,
                                    replicas="shared" if seed % 2 else "per-owner")
    joint = solve_owners(problem, "joint", time_limit=None)
    for method in ("heuristic", "independent", "sequential"):
        r = solve_owners(problem, method, time_limit=None)
        validate_owners_plan(problem, r.plan)
        assert owners_plan_fits(problem, r.plan)
        assert r.lower_bound_s <= r.makespan_s
        assert r.plan_bound_s <= r.makespan_s * (1 + 1e-9)
        assert 0 <= r.gap < 1
        if method != "sequential":
            # the bound holds for every combination, the joint optimum included
            assert r.lower_bound_s <= joint.makespan_s * (1 + 1e-9)
            assert joint.makespan_s <= r.makespan_s * (1 + 1e-9)
    # sequential SL: the round is the sum of the owners' makespans, each alone
    seq = solve_owners(problem, "sequential", time_limit=None)
    alone = [simulate_owners(problem.owner_problem(o), OwnersPlan((p,))).makespan_s
             for o, p in enumerate(seq.plan.plans)]
    assert seq.makespan_s == pytest.approx(math.fsum(alone), rel=1e-9)


def test_time_limit_reports_an_honest_gap() -> None:
    problem = random_owners_problem(7, owners=3, layers=3, batch=4)
    r = solve_owners(problem, "joint", time_limit=0.0)
    assert r.lower_bound_s <= r.makespan_s
    full = solve_owners(problem, "joint", time_limit=None)
    assert r.lower_bound_s <= full.makespan_s * (1 + 1e-9)
    assert r.optimal == (r.gap == 0 and r.status == "optimal")


def test_document_loads_back() -> None:
    import json

    from pipesl.plan import owners_plan_from_dict

    problem = random_owners_problem(4)
    r = solve_owners(problem, "joint")
    doc = json.loads(json.dumps(r.document()))
    assert owners_plan_from_dict(doc, problem) == r.plan
    assert doc["objective_s"] == r.makespan_s
    assert [e["objective_s"] for e in doc["owners"]] == [row.makespan_s for row in r.owners]


def test_unknown_method_and_objective_name_the_field() -> None:
    problem = random_owners_problem(5)
    with pytest.raises(ProblemError, match="method"):
        solve_owners(problem, "exact")
    with pytest.raises(ProblemError, match="objective"):
        solve_owners(problem, "joint", objective="analytic")


@pytest.mark.parametrize("seed", range(6))
def test_cached_bound_is_owners_lower_bound(seed: int) -> None:
    from pipesl.cost.owners import owners_lower_bound
    from pipesl.schedules import makespan_lower_bound
    from pipesl.solvers.owners_space import Evaluator

    problem = random_owners_problem(300 + seed, owners=3, layers=3, batch=4)
    plans = solve_owners(problem, "independent", time_limit=None).plan.plans
    own = [makespan_lower_bound(problem.owner_problem(o), p) for o, p in enumerate(plans)]
    want = owners_lower_bound(problem, OwnersPlan(plans), own)
    assert Evaluator(problem).bound([0, 1, 2], list(plans)) == pytest.approx(want, rel=1e-12)
