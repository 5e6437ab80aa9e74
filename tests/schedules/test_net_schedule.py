"""``1f1b-net``: warm-up depths that cover the round trip (hops included), capped by memory;
its table validates, its memory peak is its rule, and it is the one table everyone runs."""

from __future__ import annotations

import itertools
import random

import pytest

from pipesl.cost import memory_use, net_warmups
from pipesl.problem import load_problem
from pipesl.schedules import OneFOneBNet, peak_in_flight, plan_table
from pipesl.sim import simulate
from pipesl.solvers import solve
from strategies import random_plan, random_problem


@pytest.mark.parametrize("seed", range(80))
def test_warmups_are_a_valid_table_and_the_memory_rule(seed: int) -> None:
    r = random.Random(seed)
    problem = random_problem(r, schedule="1f1b-net")
    plan = random_plan(r, problem)
    w = net_warmups(problem, plan)
    assert all(a >= b >= 1 for a, b in itertools.pairwise(w)) and w[-1] >= 1
    table = plan_table(problem, plan)
    assert table.name == "1f1b-net"
    assert peak_in_flight(table) == w
    result = simulate(problem, plan)
    for mem in result.memory.values():
        assert mem.peak_micro_batches == w[mem.stage]
        assert mem.spec_samples == w[mem.stage] * plan.micro_batch_size
    assert set(memory_use(problem, plan)) == set(plan.nodes)


@pytest.mark.parametrize("seed", range(40))
def test_never_less_warm_up_than_1f1b_when_memory_allows(seed: int) -> None:
    r = random.Random(seed)
    problem = random_problem(r, schedule="1f1b-net", memory="unbounded")
    plan = random_plan(r, problem)
    m = -(-problem.training.batch_size // plan.micro_batch_size)
    k_total = plan.num_stages
    w = net_warmups(problem, plan)
    assert all(w[k] >= min(m, k_total - k) for k in range(k_total))


def test_without_warmups_it_is_1f1b() -> None:
    from pipesl.schedules import OneFOneB

    assert OneFOneBNet().table(3, 5).orders == OneFOneB().table(3, 5).orders


def test_covers_the_round_trip_on_relay_line() -> None:
    """On relay-line's multi-hop routes 1f1b-net keeps more in flight and runs faster."""
    base = load_problem("relay-line")
    net = base.with_training(schedule="1f1b-net")
    plan = solve(base, objective="analytic").plan
    w = net_warmups(net, plan)
    assert w[0] > plan.num_stages  # more than 1F1B's K - k on the first stage
    assert simulate(net, plan).makespan_s < simulate(base, plan).makespan_s


def test_runtime_runs_the_same_table() -> None:
    from pipesl.runtime.topology import build_topology

    problem = load_problem("relay-line")
    plan = solve(problem, objective="analytic").plan
    topology = build_topology(problem, plan, "1f1b-net")
    assert topology.table.orders == plan_table(problem, plan, "1f1b-net").orders
    assert topology.table.name == "1f1b-net"
