"""Properties of ``simulate`` on seeded random problems and plans (tests/strategies.py)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from itertools import pairwise

import numpy as np
import pytest

from pipesl import cost
from pipesl.plan import Plan
from pipesl.problem import Problem
from pipesl.schedules import get_schedule
from pipesl.sim import SimResult, plan_steps, simulate
from strategies import random_plan, random_problem

SEEDS = range(60)


def instance(seed: int, **kwargs: object) -> tuple[Problem, Plan]:
    problem = random_problem(random.Random(seed), memory="unbounded", **kwargs)  # type: ignore[arg-type]
    return problem, random_plan(random.Random(10_000 + seed), problem)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_one_micro_batch_gives_the_analytic_t(seed: int, schedule: str) -> None:
    problem, plan = instance(seed)
    plan = plan.with_micro_batch_size(problem.training.batch_size)  # b = B, M = 1
    result = simulate(problem, plan, schedule)
    assert result.num_micro_batches == 1
    expected = sum(st.time(plan.micro_batch_size) for st in cost.plan_stages(problem, plan))
    assert result.analytic_s == expected
    # Equal up to rounding: the simulator adds pass by pass, the formula stage by stage.
    assert math.isclose(result.makespan_s, expected, rel_tol=1e-12, abs_tol=1e-15)
    assert abs(result.gap_s) <= 1e-12 * expected + 1e-15


def check_trace(problem: Problem, plan: Plan, result: SimResult) -> None:
    """Every action once, dependencies kept, resources serve one task at a time in order."""
    trace = result.trace
    steps = plan_steps(problem, plan)
    m_total = result.num_micro_batches
    passes = 1 if result.forward_only else 2
    assert len(trace) == passes * len(steps) * m_total
    start: dict[tuple[int, int, int], float] = {}
    end: dict[tuple[int, int, int], float] = {}
    for rec in trace.records():
        key = (rec.step_index, 0 if rec.kind == "F" else 1, rec.micro_batch)
        assert key not in start, f"{key} ran twice"
        start[key], end[key] = rec.start_s, rec.end_s
        step = steps[rec.step_index]
        assert rec.resource == (step.forward_resource if rec.kind == "F"
                                else step.backward_resource).name
    last = len(steps) - 1
    for m in range(m_total):
        for p in range(len(steps)):
            if p > 0:  # forward visits the steps in order (store-and-forward)
                assert start[(p, 0, m)] >= end[(p - 1, 0, m)]
            if result.forward_only:
                continue
            assert start[(p, 1, m)] >= end[(p, 0, m)]  # backward after forward
            if p < last:  # backward returns in reverse
                assert start[(p, 1, m)] >= end[(p + 1, 1, m)]
    # Non-preemptive single servers: tasks on one resource never overlap.
    by_resource: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r, t0, t1 in zip(trace.resource.tolist(), trace.start.tolist(), trace.end.tolist(),
                         strict=True):
        by_resource[r].append((t0, t1))
    for spans in by_resource.values():
        spans.sort()
        for (_, e0), (s1, _) in pairwise(spans):
            assert s1 >= e0
    # Compute nodes follow the schedule's order.
    table = get_schedule(result.schedule).table(plan.num_stages, m_total)
    if result.forward_only:
        table = table.forward_only()
    for p, step in enumerate(steps):
        if step.stage is None:
            continue
        order = sorted((start[(p, kind, m)], f"{'FB'[kind]}{m}")
                        for kind in range(passes) for m in range(m_total))
        assert [a for _, a in order] == [str(a) for a in table.orders[step.stage]]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_bounds_and_trace(seed: int, schedule: str) -> None:
    problem, plan = instance(seed, batch_size=random.Random(seed).choice([4, 16, 37]))
    result = simulate(problem, plan, schedule)
    b, m_total = plan.micro_batch_size, result.num_micro_batches
    loads = {r.name: a(b) for r, a in cost.resource_loads(problem, plan).items()}
    trip = result.first_micro_batch_s
    tol = 1e-9 * result.makespan_s
    # With every micro-batch full size, each resource has M loads of work to do ...
    for r, load in loads.items():
        assert result.makespan_s >= m_total * load - tol, r
        assert result.busy_s[r] == pytest.approx(m_total * load, rel=1e-9)
    assert set(result.busy_s) == set(loads)
    # ... the first micro-batch alone takes the trip, and some resource is always busy.
    assert result.makespan_s >= trip - tol
    assert result.makespan_s <= m_total * trip + tol
    assert 0.0 <= result.bubble_fraction < 1.0
    assert all(0.0 <= u <= 1.0 + 1e-12 for u in result.utilisation.values())
    check_trace(problem, plan, result)


@pytest.mark.parametrize("seed", range(20))
def test_forward_only_and_remainder_traces(seed: int) -> None:
    problem, plan = instance(seed, batch_size=37)
    fwd = simulate(problem, plan, "1f1b", forward_only=True)
    assert fwd.forward_only
    check_trace(problem, plan, fwd)
    rem = simulate(problem, plan, "gpipe", last_micro_batch="remainder")
    check_trace(problem, plan, rem)
    b = plan.micro_batch_size
    assert rem.last_micro_batch_size == 37 - (rem.num_micro_batches - 1) * b
    full = simulate(problem, plan, "gpipe")
    assert full.last_micro_batch_size == b
    assert rem.makespan_s <= full.makespan_s * (1 + 1e-12)
    if rem.last_micro_batch_size == b:
        assert np.array_equal(rem.trace.end, full.trace.end)


def test_forward_only_identical_jobs_no_sharing_obeys_flow_shop() -> None:
    """On a plan with no shared resource, forward-only makespan = sum x + (M-1) max x."""
    checked = 0
    for seed in range(200):
        problem, plan = instance(seed, full_duplex_prob=1.0, labels="none")
        steps = plan_steps(problem, plan)
        resources = [s.forward_resource for s in steps]
        if len(set(resources)) < len(resources):
            continue
        result = simulate(problem, plan, forward_only=True)
        d = [s.forward(plan.micro_batch_size) for s in steps]
        expected = sum(d) + (result.num_micro_batches - 1) * max(d)
        assert result.makespan_s == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked >= 50


@pytest.mark.parametrize("seed", range(30))
def test_peak_activations_match_the_spec_rule(seed: int) -> None:
    problem, plan = instance(seed)
    k_total, b, batch = plan.num_stages, plan.micro_batch_size, problem.training.batch_size
    for schedule in ("gpipe", "1f1b"):
        result = simulate(problem, plan, schedule)
        m_total = result.num_micro_batches
        for k, stage in enumerate(plan.stages):
            mem = result.memory[stage.node]
            assert mem.stage == k
            window = m_total if schedule == "gpipe" else min(m_total, k_total - k)
            assert mem.peak_micro_batches == window
            assert mem.peak_samples == window * b
            expected_spec = batch if schedule == "gpipe" else window * b
            assert mem.spec_samples == expected_spec
        rem = simulate(problem, plan, schedule, last_micro_batch="remainder")
        if schedule == "gpipe":  # every sample's activations kept: exactly B with remainder
            assert all(m.peak_samples == batch for m in rem.memory.values())


@pytest.mark.parametrize("seed", range(30))
def test_stage_phases_add_up_to_the_cost_model(seed: int) -> None:
    problem, plan = instance(seed)
    b = plan.micro_batch_size
    stages = cost.plan_stages(problem, plan)
    phases = cost.stage_phases(problem, plan)
    assert len(stages) == len(phases)
    per_resource: dict[str, float] = defaultdict(float)
    for st, ph in zip(stages, phases, strict=True):
        assert ph.forward(b) + ph.backward(b) == pytest.approx(st.time(b), rel=1e-12)
        per_resource[ph.forward_resource.name] += ph.forward(b)
        per_resource[ph.backward_resource.name] += ph.backward(b)
    loads = {r.name: a(b) for r, a in cost.resource_loads(problem, plan).items()}
    assert per_resource.keys() == loads.keys()
    for r, load in loads.items():
        assert per_resource[r] == pytest.approx(load, rel=1e-12)
