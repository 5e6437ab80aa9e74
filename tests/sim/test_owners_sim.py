"""Several data owners on one event engine: one owner is today's trace, sharing is costed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from owner_strategies import random_owners_plan, random_owners_problem
from pipesl import cost
from pipesl.cost.owners import owners_bound, owners_busy
from pipesl.exceptions import PlanError
from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.problem import problem_from_dict
from pipesl.schedules import plan_table
from pipesl.sim import (
    OwnerPipeline,
    plan_steps,
    run_pipeline,
    run_pipelines,
    simulate,
    simulate_owners,
)
from strategies import random_plan, random_problem

TRACE_COLUMNS = ("resource", "step", "kind", "micro_batch", "start", "end")


@pytest.mark.parametrize("seed", range(40))
def test_one_owner_trace_is_identical_to_run_pipeline(seed: int) -> None:
    schedule = ("gpipe", "1f1b", "1f1b-net")[seed % 3]
    problem = random_problem(seed, schedule=schedule)
    plan = random_plan(seed, problem)
    table = plan_table(problem, plan)
    steps = plan_steps(problem, plan)
    m = table.num_micro_batches
    sizes = [plan.micro_batch_size] * (m - 1) + [1 + seed % plan.micro_batch_size]
    today = run_pipeline(steps, table, sizes)
    shared = run_pipelines([OwnerPipeline(steps, table, tuple(sizes))])
    assert shared.resources == today.resources and shared.steps == today.steps
    assert shared.step_stages == today.step_stages and shared.owner is None
    for column in TRACE_COLUMNS:
        assert np.array_equal(getattr(shared, column), getattr(today, column)), column


@pytest.mark.parametrize("seed", range(10))
def test_one_owner_simulate_owners_equals_simulate(seed: int) -> None:
    problem = random_problem(seed, schedule=("gpipe", "1f1b")[seed % 2])
    plan = random_plan(seed, problem)
    alone = simulate(problem, plan)
    joint = simulate_owners(problem, OwnersPlan((plan,)))
    assert joint.makespan_s == alone.makespan_s
    assert joint.owner_makespans_s == (alone.makespan_s,)
    assert joint.busy_s == alone.busy_s
    assert joint.owners[0].alone_s == alone.makespan_s


def random_case(seed: int, **options: object) -> tuple[object, OwnersPlan]:
    n_owners = 2 + seed % 3
    replicas = "shared" if seed % 2 else "per-owner"
    problem = random_owners_problem(seed, n_owners, replicas=replicas,
                                    schedule=("gpipe", "1f1b", "1f1b-net")[seed % 3],
                                    **options)  # type: ignore[arg-type]
    return problem, random_owners_plan(seed, problem)


@pytest.mark.parametrize("seed", range(60))
def test_every_named_bound_term_holds_against_the_simulation(seed: int) -> None:
    problem, plan = random_case(seed)
    result = simulate_owners(problem, plan)  # type: ignore[arg-type]
    tol = 1e-9 * result.makespan_s
    labels = [o.label for o in problem.owners]  # type: ignore[attr-defined]
    cheap = owners_bound(problem, plan).named(labels)  # type: ignore[arg-type]
    for name, value in {**cheap, **result.bound_terms}.items():
        assert value <= result.makespan_s + tol, (seed, name, value, result.makespan_s)
    # Each owner's own terms bound that owner's own end, not only the iteration's.
    for row in result.owners:
        assert result.bound_terms[f"owner:{row.label}"] <= row.end_s + tol, (seed, row)
        assert cheap[f"owner:{row.label}"] <= row.end_s + tol, (seed, row)
        # (An owner may finish *earlier* than alone: others' traffic can reorder its own FIFO
        # link tasks for the better, a list-scheduling anomaly; seed 10 shows one.)
    assert result.lower_bound_s <= result.makespan_s + tol
    assert result.makespan_s == max(result.owner_makespans_s)


@pytest.mark.parametrize("seed", range(20))
def test_busy_time_is_every_owners_work(seed: int) -> None:
    problem, plan = random_case(seed)
    result = simulate_owners(problem, plan)  # type: ignore[arg-type]
    expected = owners_busy(problem, plan)  # type: ignore[arg-type]
    assert set(result.busy_s) == set(expected)
    # the bound's resource terms are keyed by the trace's typed resources, names at the edge
    terms = owners_bound(problem, plan).resource_terms  # type: ignore[arg-type]
    assert set(terms) == set(result.trace.typed_resources)
    assert all(isinstance(r, cost.Resource) for r in terms)
    for r, busy in expected.items():
        assert math.isclose(result.busy_s[r], busy, rel_tol=1e-9, abs_tol=1e-15), r


@pytest.mark.parametrize("seed", range(15))
def test_sequential_round_is_the_sum_of_the_owners_alone(seed: int) -> None:
    problem = random_owners_problem(seed, 3, mode="sequential")
    plan = random_owners_plan(seed, problem)
    result = simulate_owners(problem, plan)
    alone = [simulate(problem.owner_problem(o), p).makespan_s for o, p in enumerate(plan)]
    assert math.isclose(result.makespan_s, math.fsum(alone), rel_tol=1e-12)
    assert result.owner_makespans_s[-1] == result.makespan_s
    assert result.lower_bound_s <= result.makespan_s * (1 + 1e-9)
    assert [r.name for r in result.trace.typed_resources] == list(result.trace.resources)
    owners = result.trace.owners()
    for o in range(1, problem.num_owners):  # turns do not overlap
        assert result.trace.start[owners == o].min() >= result.trace.end[owners == o - 1].max() \
            - 1e-12


# Two owners a, b on their own links to one server s; each computes layer 1, s layer 2.
# a-s and b-s are separate links, so only s is shared.
TWO = {
    "network": {
        "nodes": [{"id": "a", "flops": 1e9}, {"id": "b", "flops": 1e9},
                  {"id": "s", "flops": 1e9}],
        "links": [{"source": "a", "target": "s", "bandwidth": 8e6, "duplex": "full"},
                  {"source": "b", "target": "s", "bandwidth": 8e6, "duplex": "full"}],
    },
    "model": {"name": "m", "input_bytes": 1,
              "layers": [{"name": "l1", "fwd_flops": 1e6, "bwd_flops": 1e6, "out_bytes": 1e3,
                          "param_bytes": 100, "act_bytes": 10},
                         {"name": "l2", "fwd_flops": 2e6, "bwd_flops": 2e6, "out_bytes": 1,
                          "param_bytes": 1000, "act_bytes": 20}]},
    "training": {"sources": [{"node": "a", "batch_size": 1}, {"node": "b", "batch_size": 1}],
                 "replicas": "shared"},
}
PLAN = OwnersPlan((Plan((Stage("a", 1, 1), Stage("s", 2, 2)), (("a", "s"),), 1),
                   Plan((Stage("b", 1, 1), Stage("s", 2, 2)), (("b", "s"),), 1)))


def test_two_owners_on_one_server_by_hand() -> None:
    # Per micro-batch of 1 sample: layer 1 forward 1 ms on a or b; the hop 8*1e3/8e6 = 1 ms
    # each way; layer 2 forward 2 ms and backward 2 ms on s; layer 1 backward 1 ms.
    # Both activations reach s at 2 ms (a tie: owner 0 first), so s runs F_a 2-4. Then B_a
    # (ready at 4) and F_b (ready at 2) are both heads; F_b arrived first, so s runs F_b 4-6,
    # then B_a 6-8 (ready 4) and B_b 8-10 (ready 6).
    # Gradients: a gets B_a's at 8 + 1 = 9, backward to 10; b at 10 + 1 = 11, done at 12.
    problem = problem_from_dict(TWO)
    result = simulate_owners(problem, PLAN)
    assert result.owner_makespans_s == pytest.approx((10e-3, 12e-3), rel=1e-12)
    assert result.makespan_s == pytest.approx(12e-3, rel=1e-12)
    on_s = [(r.owner, r.kind, r.start_s) for r in result.trace.records()
            if r.resource == "node:s"]
    assert [(o, k) for o, k, _ in on_s] == [(0, "F"), (1, "F"), (0, "B"), (1, "B")]
    assert [t for _, _, t in on_s] == pytest.approx([2e-3, 4e-3, 6e-3, 8e-3], rel=1e-12)
    # Alone, each owner takes 1 + 1 + 2 + 2 + 1 + 1 = 8 ms.
    assert [r.alone_s for r in result.owners] == pytest.approx([8e-3, 8e-3], rel=1e-12)
    # Bound: s busy 2 * (2 + 2) = 8 ms, after a head of 2 ms and before a tail of 2 ms.
    assert result.bound_terms["resource:node:s"] == pytest.approx(12e-3, rel=1e-12)
    assert result.gap == pytest.approx(0.0, abs=1e-9)


def test_memory_counts_the_shared_server_state_once() -> None:
    # state_factor 3: s holds layer 2's 1000 bytes of parameters -> 3000 bytes, shared; each
    # owner keeps 1 sample of 20 bytes of activations there (GPipe, B = 1).
    shared = simulate_owners(problem_from_dict(TWO), PLAN)
    assert shared.memory["s"].used_bytes == pytest.approx(3000 + 2 * 20)
    assert shared.memory["a"].used_bytes == pytest.approx(300 + 10)
    per_owner = dict(TWO, training={**TWO["training"], "replicas": "per-owner"})  # type: ignore[dict-item]
    separate = simulate_owners(problem_from_dict(per_owner), PLAN)
    assert separate.memory["s"].used_bytes == pytest.approx(2 * 3000 + 2 * 20)
    assert [st[:2] for st in separate.memory["s"].stages] == [(0, 1), (1, 1)]
    # Taking turns, one owner's activations are in flight at a time.
    turns = dict(TWO, training={**TWO["training"], "owners": "sequential"})  # type: ignore[dict-item]
    assert simulate_owners(problem_from_dict(turns), PLAN).memory["s"].used_bytes == \
        pytest.approx(3000 + 20)


def test_owners_on_disjoint_resources_do_not_slow_each_other() -> None:
    doc = json.loads(json.dumps(TWO))
    doc["network"]["nodes"].append({"id": "t", "flops": 1e9})
    doc["network"]["links"].append({"source": "b", "target": "t", "bandwidth": 8e6})
    doc["training"]["replicas"] = "per-owner"
    problem = problem_from_dict(doc)
    plan = OwnersPlan((PLAN.plans[0], Plan((Stage("b", 1, 1), Stage("t", 2, 2)),
                                           (("b", "t"),), 1)))
    result = simulate_owners(problem, plan)
    assert result.owner_makespans_s == tuple(r.alone_s for r in result.owners)


def test_to_dict_is_json_and_simulate_dispatches() -> None:
    problem = problem_from_dict(TWO)
    result = simulate(problem, PLAN)
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["num_owners"] == 2 and doc["makespan_s"] == result.makespan_s
    assert [o["label"] for o in doc["owners"]] == ["a", "b"]
    assert doc["memory"]["s"]["stages"][1]["owner"] == 1
    with pytest.raises(PlanError, match="is one owner's plan; the problem has 2 data owners"):
        simulate(problem, PLAN.plans[0])
    chrome = result.trace.to_chrome()
    assert any(e.get("args", {}).get("owner") == "b" for e in chrome["traceEvents"])


def test_merged_server_serves_the_head_ready_longest() -> None:
    from pipesl.sim import MergedServer

    # Queue 0: F (task 0), then B (task 1); queue 1: F (task 10).
    server = MergedServer([[0, 1], [10]], [[False, True], [False]])
    server.arrive(1, 1.0)  # B's input is there early, but it waits for task 0 to finish
    server.arrive(0, 0.0)
    assert server.take() == 0
    server.arrive(10, 2.0)
    server.release(3.0)  # task 0 ends at 3: queue 0's head is ready since 3, queue 1's since 2
    assert server.take() == 10
    server.release(4.0)
    assert server.take() == 1 and server.take() == -1 and server.pending() == 0
    # A tie in ready time goes to the backward pass, then to the lower queue.
    tie = MergedServer([[0], [10], [20]], [[False], [True], [False]])
    for task in (0, 10, 20):
        tie.arrive(task, 5.0)
    assert [tie.take() for _ in range(3)] == [10, 0, 20]
