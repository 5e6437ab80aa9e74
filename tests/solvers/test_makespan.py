"""The schedule-true planner (method makespan / objective makespan) against exhaustive
enumeration + simulation, its result contract, and its honesty under a time limit."""

from __future__ import annotations

import math
import random

import pytest

from pipesl.cost import evaluate, feasible_micro_batch_sizes, objective
from pipesl.exceptions import InfeasibleError
from pipesl.experiments.generators import edge_problem
from pipesl.plan import validate_plan
from pipesl.problem import load_problem
from pipesl.sim import simulate
from pipesl.solvers import solve
from pipesl.solvers.bruteforce import enumerate_plans
from pipesl.solvers.makespan import plan_makespan
from strategies import random_plan, random_problem

SCHEDULES = ("gpipe", "1f1b", "1f1b-net")


def _instance(seed: int):
    r = random.Random(seed)
    return random_problem(r, n_nodes=r.randint(1, 5), n_layers=r.randint(1, 4),
                          batch_size=r.choice([1, 2, 5, 8, 12]),
                          schedule=SCHEDULES[seed % 3])


def check_makespan_result(problem, result) -> None:
    validate_plan(problem, result.plan)
    ev = evaluate(problem, result.plan)
    assert ev.feasible, ev.violations
    assert result.objective == "makespan"
    assert result.objective_s == pytest.approx(simulate(problem, result.plan).makespan_s,
                                               rel=1e-9)
    assert result.analytic_s == pytest.approx(objective(problem, result.plan), rel=1e-12)
    assert result.lower_bound_s <= result.objective_s * (1 + 1e-12)
    doc = result.document()
    assert doc["objective"] == "makespan"
    assert doc["objective_s"] == result.objective_s
    assert doc["analytic_s"] == pytest.approx(result.analytic_s, rel=1e-12)


@pytest.mark.parametrize("seed", range(60))
def test_equals_least_simulated_makespan_over_every_plan_and_b(seed: int) -> None:
    """The brute force enumerates every plan and every b in 1..B and simulates each."""
    problem = _instance(seed)
    try:
        brute = solve(problem, "bruteforce", objective="makespan")
    except InfeasibleError:
        with pytest.raises(InfeasibleError):
            solve(problem, objective="makespan")
        return
    result = solve(problem, objective="makespan")
    check_makespan_result(problem, result)
    assert result.optimal and result.status == "optimal"
    assert result.objective_s == pytest.approx(brute.objective_s, rel=1e-9), seed


def test_brute_force_reference_is_exhaustive() -> None:
    """The reference itself: its optimum is the least simulated makespan it could see."""
    problem = _instance(4)
    brute = solve(problem, "bruteforce", objective="makespan")
    best = math.inf
    for plan in enumerate_plans(problem):
        ok = feasible_micro_batch_sizes(problem, plan)
        for b in range(1, problem.training.batch_size + 1):
            if ok[b - 1]:
                best = min(best, simulate(problem, plan.with_micro_batch_size(b)).makespan_s)
    assert brute.objective_s == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_smallest_b_of_each_m_dominates(seed: int) -> None:
    """Why the search visits only b = ceil(B / M): on random plans, no larger b with the
    same M simulates faster (every pass time is non-decreasing in b)."""
    r = random.Random(seed)
    problem = random_problem(r, schedule=SCHEDULES[seed % 3], batch_size=32,
                             memory="unbounded")
    plan = random_plan(r, problem)
    batch = problem.training.batch_size
    by_m: dict[int, float] = {}
    for b in range(1, batch + 1):
        m = -(-batch // b)
        t = simulate(problem, plan.with_micro_batch_size(b)).makespan_s
        if m not in by_m:
            by_m[m] = t  # b = ceil(B / M) comes first
        assert t >= by_m[m] * (1 - 1e-9), (seed, b, m)


def test_relay_line_beats_the_analytic_plan_and_every_b() -> None:
    problem = load_problem("relay-line")
    result = solve(problem, objective="makespan")
    check_makespan_result(problem, result)
    analytic = solve(problem, objective="analytic")
    assert result.objective_s < simulate(problem, analytic.plan).makespan_s
    for b in range(1, problem.training.batch_size + 1):  # the user's -b choices
        if feasible_micro_batch_sizes(problem, result.plan)[b - 1]:
            t = simulate(problem, result.plan.with_micro_batch_size(b)).makespan_s
            assert t >= result.objective_s * (1 - 1e-9)
    for b in (8, 16, 32, 64):
        fixed = solve(problem, objective="makespan", micro_batch_size=b)
        assert fixed.objective_s >= result.objective_s * (1 - 1e-9)
    default = solve(problem)  # the library's default objective is the makespan
    assert default.objective == "makespan" and default.optimal
    assert default.objective_s == pytest.approx(result.objective_s, rel=1e-12)


def test_time_limit_is_honest() -> None:
    problem = edge_problem(20, 30, 64, seed=1, kind="transformer", schedule="1f1b")
    result = solve(problem, objective="makespan", time_limit=0.05)
    assert result.objective_s == pytest.approx(simulate(problem, result.plan).makespan_s,
                                               rel=1e-9)
    assert result.lower_bound_s <= result.objective_s
    if not result.optimal:
        assert result.status == "time_limit" and "gap" in result.message


def test_other_methods_report_their_plans_makespan() -> None:
    problem = edge_problem(20, 30, 64, seed=0)
    result = solve(problem, "greedy", objective="makespan")
    assert result.objective == "makespan" and not result.optimal
    assert result.objective_s == pytest.approx(simulate(problem, result.plan).makespan_s,
                                               rel=1e-9)
    assert result.analytic_s == pytest.approx(objective(problem, result.plan), rel=1e-12)


def test_unknown_objective_is_refused() -> None:
    from pipesl.exceptions import ProblemError

    with pytest.raises(ProblemError, match="objective"):
        solve(edge_problem(20, 30, 64, seed=0), objective="fastest")


@pytest.mark.parametrize("seed", range(30))
def test_gpipe_per_step_floor_is_below_every_makespan(seed: int) -> None:
    """The per-step analytic optimum that can certify GPipe at once is a true lower bound."""
    from pipesl.solvers import solve_exact

    r = random.Random(seed)
    problem = random_problem(r, n_nodes=r.randint(2, 5), n_layers=r.randint(1, 4),
                             batch_size=r.choice([2, 5, 8, 12]), schedule="gpipe",
                             labels="none")
    try:
        brute = solve(problem, "bruteforce", objective="makespan")
    except InfeasibleError:
        return
    floor = solve_exact(problem, per_step=True).lower_bound_s
    assert floor <= brute.objective_s * (1 + 1e-9)
    assert solve(problem, objective="makespan").objective_s == pytest.approx(
        brute.objective_s, rel=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_gpipe_split_floor_is_below_every_makespan(seed: int) -> None:
    """The split floor (S + (M-1)(max f + max g), relaxed) never exceeds the least makespan
    over every plan and b (exhaustive enumeration, each simulated)."""
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes
    from pipesl.solvers.split_floor import gpipe_split_floor

    r = random.Random(1000 + seed)
    problem = random_problem(r, n_nodes=r.randint(2, 5), n_layers=r.randint(1, 4),
                             batch_size=r.choice([2, 5, 8, 12]), schedule="gpipe",
                             labels="none")
    try:
        brute = solve(problem, "bruteforce", objective="makespan")
    except InfeasibleError:
        return
    floor, plans = gpipe_split_floor(problem, candidate_micro_batch_sizes(
        problem.training.batch_size))
    for plan in plans:  # the plans it returns are valid, and no faster than the floor
        assert plan_makespan(problem, plan) >= floor * (1 - 1e-9)
    assert 0 < floor <= brute.objective_s * (1 + 1e-9)


def test_gpipe_split_floor_is_tight_on_most_small_instances() -> None:
    """On private GPipe chains the floor is the optimum itself: it must reach the exhaustive
    optimum on a good share of small random instances (a floor of 0 would fail this)."""
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes
    from pipesl.solvers.split_floor import gpipe_split_floor

    tight = total = 0
    for seed in range(40):
        r = random.Random(2000 + seed)
        problem = random_problem(r, n_nodes=r.randint(2, 4), n_layers=r.randint(1, 3),
                                 batch_size=r.choice([2, 5, 8]), schedule="gpipe",
                                 labels="none")
        try:
            brute = solve(problem, "bruteforce", objective="makespan")
        except InfeasibleError:
            continue
        total += 1
        floor, _ = gpipe_split_floor(problem, candidate_micro_batch_sizes(
            problem.training.batch_size))
        tight += floor >= brute.objective_s * (1 - 1e-9)
    assert total >= 20 and tight >= total // 3


@pytest.mark.parametrize("seed", range(30))
def test_split_floor_least_maxima_bound_every_plan(seed: int) -> None:
    """F_min and G_min (the min-max DP that starts the split floor's searches), and the
    source cut's cheaper bounds, never exceed a valid plan's largest forward and largest
    backward step, at every b; F_min and G_min are positive where a plan exists."""
    from pipesl.cost import CostTables, stage_phases
    from pipesl.solvers.layered import Context
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes
    from pipesl.solvers.routes import RouteCache
    from pipesl.solvers.split_floor import _SplitTables

    r = random.Random(3000 + seed)
    problem = random_problem(r, n_nodes=r.randint(2, 5), n_layers=r.randint(1, 4),
                             batch_size=r.choice([2, 5, 8, 12]), schedule="gpipe",
                             labels="none")
    tables = CostTables.from_problem(problem)
    plans = list(enumerate_plans(problem))
    for b in candidate_micro_batch_sizes(problem.training.batch_size):
        split = _SplitTables(problem, tables, Context(problem, tables, b, RouteCache()))
        f_min, g_min = split.least_maxima()
        f_cut, g_cut = split.source_cut()
        least_f = least_g = math.inf
        for plan in plans:
            plan = plan.with_micro_batch_size(b)
            if not feasible_micro_batch_sizes(problem, plan)[b - 1]:
                continue
            phases = stage_phases(problem, plan)
            f = max(p.forward(b) for p in phases)
            g = max(p.backward(b) for p in phases)
            assert f >= f_min * (1 - 1e-12) and g >= g_min * (1 - 1e-12), (b, plan)
            assert f >= f_cut * (1 - 1e-12) and g >= g_cut * (1 - 1e-12), (b, plan)
            least_f, least_g = min(least_f, f), min(least_g, g)
        if math.isfinite(least_f):
            assert f_min > 0 and g_min > 0
        else:  # no plan fits at this b: nor does any relaxed one need to
            assert f_min <= least_f


@pytest.mark.parametrize("seed", range(30))
def test_gpipe_split_floor_with_a_cap_and_any_order_is_below_every_makespan(seed: int) -> None:
    """As the planner calls it: capped at the optimum (the caps prune its searches) and
    with the b bounded out of order (the larger b then use smaller b's bounds, item (d));
    still no more than the exhaustive optimum, and the plans it meets no faster than it."""
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes
    from pipesl.solvers.split_floor import gpipe_split_floor

    r = random.Random(1000 + seed)
    problem = random_problem(r, n_nodes=r.randint(2, 5), n_layers=r.randint(1, 4),
                             batch_size=r.choice([2, 5, 8, 12]), schedule="gpipe",
                             labels="none")
    try:
        brute = solve(problem, "bruteforce", objective="makespan")
    except InfeasibleError:
        return
    fixed = problem.training.micro_batch_size
    sizes = [fixed] if fixed else candidate_micro_batch_sizes(problem.training.batch_size)
    for first in ((), (sizes[-1],), (brute.micro_batch_size, sizes[0])):
        for upper in (math.inf, brute.objective_s, brute.objective_s * 1.05):
            floor, plans = gpipe_split_floor(problem, sizes, upper, first=first)
            assert 0 < floor <= brute.objective_s * (1 + 1e-9), (first, upper)
            for plan in plans:
                assert plan_makespan(problem, plan) >= brute.objective_s * (1 - 1e-9)


def _anomaly_instance():
    """A 1F1B-net problem (3 nodes, 3 layers, labels at a relay, B = 12) on which b = 7
    simulates faster than b = 6 although both give M = 2: the warm-up depths follow the
    pass times, so the schedule table itself changes with b."""
    r = random.Random(2)
    return random_problem(r, n_nodes=r.randint(3, 8), topology=None, schedule="1f1b-net",
                          batch_size=r.choice([12, 20]), memory="unbounded",
                          full_duplex_prob=0.2, labels=r.choice(["any", "none", "source"]))


def test_a_larger_b_of_the_same_m_can_be_faster_and_the_search_finds_it() -> None:
    problem = _anomaly_instance()
    brute = solve(problem, "bruteforce", objective="makespan")
    b = brute.micro_batch_size
    smallest = -(-problem.training.batch_size // brute.num_micro_batches)
    # the premise: the optimum's b is not the smallest of its M, and that b runs slower
    assert b > smallest, (b, smallest)
    assert plan_makespan(problem, brute.plan.with_micro_batch_size(smallest)) > \
        brute.objective_s * (1 + 1e-6)
    result = solve(problem, objective="makespan")
    check_makespan_result(problem, result)
    assert result.optimal
    assert result.objective_s == pytest.approx(brute.objective_s, rel=1e-9)
    assert result.counters.get("siblings", 0) > 0


@pytest.mark.parametrize("seed", range(60))
def test_fixed_order_plans_are_non_decreasing_in_b_for_each_m(seed: int) -> None:
    """The case docs/planner.md proves: when every resource serves its tasks in an order
    the durations cannot change (``fixed_order``), a larger b of the same M never
    simulates faster, so the search need not try it."""
    from pipesl.solvers.makespan import fixed_order

    r = random.Random(5000 + seed)
    problem = random_problem(r, n_nodes=r.randint(2, 7), schedule=("gpipe", "1f1b")[seed % 2],
                             batch_size=r.choice([12, 20, 32]), memory="unbounded",
                             full_duplex_prob=r.choice([0.5, 1.0]),
                             labels=r.choice(["any", "none", "source"]))
    plan = random_plan(r, problem)
    if not fixed_order(problem, plan):
        return
    batch = problem.training.batch_size
    by_m: dict[int, float] = {}
    for b in range(1, batch + 1):
        m = -(-batch // b)
        t = simulate(problem, plan.with_micro_batch_size(b)).makespan_s
        by_m.setdefault(m, t)
        assert t >= by_m[m] * (1 - 1e-9), (seed, b, m)


def test_fixed_order_recognises_private_chains_and_refuses_shared_links() -> None:
    from pipesl.solvers.makespan import fixed_order

    seen = {True: 0, False: 0}
    for seed in range(60):
        r = random.Random(5000 + seed)
        problem = random_problem(r, n_nodes=r.randint(2, 7),
                                 schedule=("gpipe", "1f1b")[seed % 2],
                                 batch_size=r.choice([12, 20, 32]), memory="unbounded",
                                 full_duplex_prob=r.choice([0.5, 1.0]),
                                 labels=r.choice(["any", "none", "source"]))
        seen[fixed_order(problem, random_plan(r, problem))] += 1
    assert seen[True] >= 10 and seen[False] >= 10, seen
    assert not fixed_order(_anomaly_instance(), solve(_anomaly_instance(), "bruteforce",
                                                      objective="makespan").plan)


def test_the_library_default_gives_the_makespan_search_the_plan_time_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pipesl.solvers as solvers
    from pipesl.cli.plan import MAKESPAN_TIME_LIMIT

    class Seen(Exception):
        pass

    seen: list[object] = []

    def fake(problem, **options):
        seen.append(options.get("time_limit", "absent"))
        raise Seen

    monkeypatch.setitem(solvers.SOLVERS, "makespan", (fake, "the search, recorded"))
    problem = load_problem("relay-line")
    for kwargs in ({}, {"time_limit": None}, {"time_limit": 3.0}):
        with pytest.raises(Seen):
            solvers.solve(problem, **kwargs)
    assert seen == [solvers.MAKESPAN_TIME_LIMIT, None, 3.0]
    assert MAKESPAN_TIME_LIMIT == solvers.MAKESPAN_TIME_LIMIT
