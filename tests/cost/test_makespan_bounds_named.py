"""Every lower bound the certified makespan planner uses, checked alone, against brute force.

``exact`` with the makespan objective (:mod:`pipesl.solvers.makespan`) stops when its
smallest open bound reaches the incumbent; if one bound silently stopped being one, it would
still report "optimal". So each is checked *by name* on random small instances whose every
plan is enumerated (:func:`pipesl.solvers.bruteforce.enumerate_plans`) and simulated:

* the parts of :func:`pipesl.cost.bounds.pipeline_bound` (:data:`~pipesl.cost.bounds.BOUND_NAMES`)
  on a whole plan, read for its schedule table, never exceed that plan's simulated makespan;
* the same parts on every *partial* plan the search meets on the way to a plan — a prefix of
  stages and routes, the undecided rest bounded by the search's relaxed tables
  (:class:`~pipesl.solvers.makespan_tables.PassTables` ``suffix_*``) — never exceed the
  makespan of that plan (a completion of the prefix);
* the roots' cheap bounds at b (:class:`~pipesl.cost.analytic_bounds.AnalyticBounds`:
  ``max(S, M beta)``; for GPipe without labels ``S + (M - 1) beta``), the per-step analytic
  floor and the split floor (:mod:`pipesl.solvers.split_floor`) never exceed the least
  simulated makespan of any plan (at b, or over the candidate b).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pipesl import cost
from pipesl.cost.analytic_bounds import AnalyticBounds
from pipesl.cost.bounds import (
    BOUND_NAMES,
    Suffix,
    chain_lengths,
    flushes,
    pipeline_bound,
    plan_bound_steps,
)
from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.schedules import plan_table
from pipesl.schedules.planned import peak_in_flight
from pipesl.solvers.bruteforce import enumerate_plans
from pipesl.solvers.exact import solve_exact
from pipesl.solvers.makespan import _Search, _State, plan_makespan
from pipesl.solvers.makespan_tables import PassTables
from pipesl.solvers.microbatch import candidate_micro_batch_sizes
from pipesl.solvers.split_floor import gpipe_split_floor
from strategies import random_problem

TOL = 1e-9
SCHEDULES = ("gpipe", "1f1b", "1f1b-net")


def _instances(count: int) -> list[Problem]:
    out = []
    for seed in range(count):
        out.append(random_problem(
            seed, n_nodes=2 + seed % 4, n_layers=1 + seed % 5, batch_size=2 + seed % 11,
            micro_batch_size=None, schedule=SCHEDULES[seed % 3],
            labels=("none", "none", "source", "any")[seed % 4]))
    return out


def _plans(problem: Problem, b: int) -> list[tuple[Plan, float]]:
    """Every plan at b that fits in memory, with its simulated makespan."""
    out = []
    for plan in enumerate_plans(problem, b):
        plan = plan.with_micro_batch_size(b)
        if cost.feasible_micro_batch_sizes(problem, plan)[b - 1]:
            out.append((plan, plan_makespan(problem, plan)))
    return out


def _check(name_values: dict[str, float], makespan: float, where: object,
           applied: dict[str, int]) -> None:
    for name, value in name_values.items():
        assert value <= makespan * (1 + TOL), (name, value, makespan, where)
        if value > 0:
            applied[name] = applied.get(name, 0) + 1


def test_each_bound_of_a_whole_plan_is_below_its_makespan() -> None:
    applied: dict[str, int] = {}
    checked = 0
    for problem in _instances(120):
        for b in candidate_micro_batch_sizes(problem.training.batch_size):
            for plan, makespan in _plans(problem, b):
                table = plan_table(problem, plan)
                steps, last = plan_bound_steps(problem, plan)
                m = cost.num_micro_batches(problem.training.batch_size, b)
                parts: dict[str, float] = {}
                value = pipeline_bound(steps, b, m, peak_in_flight(table),
                                       chain_lengths(table.orders), flushes(table.orders),
                                       last, parts=parts)
                assert set(parts) == set(BOUND_NAMES)
                assert value == max(parts.values())
                _check(parts, makespan, (problem.name, plan), applied)
                checked += 1
    assert checked >= 200
    # every named bound applies somewhere (none is vacuous on these instances); the chain
    # and later-step bounds only on partial plans or long 1F1B chains
    assert {"trip", "resource", "window", "flush"} <= set(applied), applied


def _prefixes(search: _Search, pb: PassTables, plan: Plan, k_total: int
              ) -> list[tuple[str, float, dict[str, float]]]:
    """The bound of every partial plan the search meets on its way to ``plan``."""
    problem = search.problem
    steps = cost.plan_steps(problem, plan)
    b = plan.micro_batch_size
    idx = problem.network.node_index
    out = []
    pos = 0  # steps[:pos] decided
    used: frozenset[int] = frozenset()
    for k, stage in enumerate(plan.stages):
        pos += 1  # the compute step of stage k
        used = used | {idx[stage.node]}
        placed = _State(0, b, k_total, idx[stage.node], stage.last_layer, steps[:pos],
                        plan.stages[:k + 1], plan.routes[:k], used, (), ())
        out.append(("placed", *_bound(search, placed, pb.suffix_placed(
            stage.last_layer, idx[stage.node], used), b)))
        routes = plan.all_routes()
        if k < len(routes):
            route = routes[k]
            label = k == len(plan.stages) - 1
            x = pb.route_time(route, stage.last_layer)
            if label:  # the label route's generator, then the complete plan
                out.append(("label route", *_bound(search, placed, Suffix(x, x, 0.0, 0.0), b,
                                                   to_last=pos)))
                continue
            target = idx[plan.stages[k + 1].node]
            gen = _State(1, b, k_total, idx[stage.node], stage.last_layer, steps[:pos],
                         plan.stages[:k + 1], plan.routes[:k], used, (), (), target=target)
            out.append(("route", *_bound(search, gen, pb.suffix_arrived(
                stage.last_layer, target, used, x, (idx[stage.node], target)), b)))
            pos += len(route) - 1
            arrived = _State(2, b, k_total, target, stage.last_layer, steps[:pos],
                             plan.stages[:k + 1], plan.routes[:k + 1], used, (), ())
            out.append(("arrived", *_bound(search, arrived, pb.suffix_arrived(
                stage.last_layer, target, used), b)))
    return out


def _bound(search: _Search, state: _State, suffix: Suffix, b: int,
           to_last: int | None = None) -> tuple[float, dict[str, float]]:
    pb = search.per_b[b]
    w, ch, flush = search.windows(pb, state.stages, state.k_total)
    parts: dict[str, float] = {}
    value = pipeline_bound(state.steps, b, pb.m, w, ch, flush, to_last, suffix, parts=parts)
    # the planner's own call (times kept beside the steps) gives the same value
    assert search.bound(_with_times(state, b), suffix, to_last) == pytest.approx(value, rel=1e-12)
    return value, parts


def _with_times(state: _State, b: int) -> _State:
    return replace(state, fwd=tuple(s.forward(b) for s in state.steps),
                   bwd=tuple(s.backward(b) for s in state.steps))


def test_each_bound_of_a_partial_plan_is_below_every_completion() -> None:
    applied: dict[str, int] = {}
    kinds: set[str] = set()
    checked = 0
    for problem in _instances(120):
        sizes = candidate_micro_batch_sizes(problem.training.batch_size)
        search = _Search(problem, sizes, None)
        for b in sizes:
            pb = search.per_b[b] = PassTables(problem, b, search.tables)
            for plan, makespan in _plans(problem, b):
                k_total = plan.num_stages if problem.training.schedule == "1f1b" else 0
                for kind, value, parts in _prefixes(search, pb, plan, k_total):
                    assert value <= makespan * (1 + TOL), (kind, value, makespan, plan)
                    _check(parts, makespan, (kind, plan), applied)
                    kinds.add(kind)
                    checked += 1
    assert checked >= 500
    assert {"placed", "route", "arrived", "label route"} <= kinds
    assert set(BOUND_NAMES) <= set(applied), applied


def test_root_bounds_are_below_the_least_makespan_at_b() -> None:
    applied: dict[str, int] = {}
    for problem in _instances(120):
        cheap = AnalyticBounds(problem, cost.CostTables.from_problem(problem))
        gpipe_chain = (problem.training.schedule == "gpipe"
                       and problem.training.labels_at is None)
        for b in candidate_micro_batch_sizes(problem.training.batch_size):
            plans = _plans(problem, b)
            if not plans:
                continue
            best = min(t for _, t in plans)
            m = cost.num_micro_batches(problem.training.batch_size, b)
            named = {"root_trip": cheap.sum_lb(b), "root_busiest": m * cheap.beta_lb(b)}
            if gpipe_chain:
                named["root_gpipe_flush"] = cheap.sum_lb(b) + (m - 1) * cheap.beta_lb(b)
            _check(named, best, (problem.name, b), applied)
    assert set(applied) == {"root_trip", "root_busiest", "root_gpipe_flush"}, applied


@pytest.mark.parametrize("name", ["per_step_floor", "split_floor"])
def test_gpipe_floors_are_below_the_brute_force_optimum(name: str) -> None:
    """GPipe without labels: the per-step analytic optimum and the split floor."""
    checked = 0
    for seed in range(60):
        problem = random_problem(seed, n_nodes=2 + seed % 4, n_layers=1 + seed % 5,
                                 batch_size=2 + seed % 11, micro_batch_size=None,
                                 schedule="gpipe", labels="none")
        sizes = candidate_micro_batch_sizes(problem.training.batch_size)
        best = min((t for b in sizes for _, t in _plans(problem, b)), default=math.inf)
        if not math.isfinite(best):
            continue
        if name == "per_step_floor":
            value = solve_exact(problem, sizes, per_step=True).lower_bound_s
        else:
            value, found = gpipe_split_floor(problem, sizes)
            for plan in found:  # the plans it meets are real plans: no faster than the best
                assert plan_makespan(problem, plan) >= best * (1 - TOL)
        assert value <= best * (1 + TOL), (name, seed, value, best)
        assert value > 0
        checked += 1
    assert checked >= 40
