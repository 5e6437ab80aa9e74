"""Ranks, roles, hops and link owners derived from (problem, plan, schedule)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from runtime_cases import line_problem, three_stage_plan, ushaped_plan

from pipesl.exceptions import PlanError, ProblemError
from pipesl.plan import Plan, Stage
from pipesl.problem import load_problem
from pipesl.runtime.topology import build_topology, micro_batch_sizes
from pipesl.schedules import get_schedule
from pipesl.sim import plan_steps
from pipesl.solvers import solve


@pytest.mark.parametrize(("batch", "b", "sizes"), [(10, 4, (4, 4, 2)), (8, 8, (8,)),
                                                   (9, 1, (1,) * 9), (64, 13, (13,) * 4 + (12,))])
def test_micro_batch_sizes(batch: int, b: int, sizes: tuple[int, ...]) -> None:
    assert micro_batch_sizes(batch, b) == sizes
    assert sum(sizes) == batch


def test_iot_digits_ranks_roles_and_owners() -> None:
    problem = load_problem("iot-digits")
    plan = solve(problem, objective="analytic").plan
    topo = build_topology(problem, plan)
    assert topo.nodes[0] == problem.training.source
    assert set(topo.nodes) == {n for r in plan.routes for n in r}
    assert topo.stages[0].node == "mcu" and topo.stages[-1].node == plan.stages[-1].node
    assert topo.loss_node == plan.stages[-1].node and not topo.labels_local
    assert not topo.has_label_route
    assert topo.label_path == plan.routes[0]
    for relay in plan.routes[0][1:-1]:
        assert "relay" in topo.roles(relay)
    assert topo.roles(topo.loss_node) == ["stage 2 (L2-5)", "loss"]
    # Half duplex: one owner (the lower rank) for both directions; full duplex: the sender.
    for route in topo.hops:
        for h in route:
            link = problem.network.link_between(h.src, h.dst)
            assert link is not None
            if link.duplex == "half":
                assert h.forward_resource == h.backward_resource
                assert topo.owners[h.forward_resource] == min(h.src, h.dst, key=topo.rank)
            else:
                assert topo.owners[h.forward_resource] == h.src
                assert topo.owners[h.backward_resource] == h.dst


def test_hops_and_stages_are_the_simulator_steps() -> None:
    problem = line_problem("cnn-digits", 10)
    plan = three_stage_plan(4)
    topo = build_topology(problem, plan, "1f1b")
    steps = plan_steps(problem, plan)
    assert topo.steps == steps
    seen = [s.step for s in topo.stages] + [h.step for r in topo.hops for h in r]
    assert sorted(seen) == list(range(len(steps)))
    for route, hops in zip(topo.routes, topo.hops, strict=True):
        assert [(h.src, h.dst) for h in hops] == list(pairwise(route))
        for h in hops:
            st = steps[h.step]
            assert (st.forward_resource.name, st.backward_resource.name) == (
                h.forward_resource, h.backward_resource)
            assert h.duration("F", 4) == pytest.approx(st.forward(4))
    assert topo.table == get_schedule("1f1b").table(3, 3)
    assert topo.sizes == (4, 4, 2)
    # Labels go from the source along both stage routes, through the middle stage.
    assert topo.label_path == ("src", "a", "h", "b")
    assert topo.nodes == ("src", "a", "b", "h")
    assert topo.neighbours("a") == ["src", "h"]


def test_ushaped_label_route_shares_the_half_duplex_link() -> None:
    problem = line_problem("mlp-digits", 9, labels_at="src")
    topo = build_topology(problem, ushaped_plan(4))
    assert topo.has_label_route and topo.loss_node == "src" and topo.labels_local
    assert topo.routes == (("src", "r", "a"), ("a", "r", "src"))
    assert "loss (own labels)" in topo.roles("src")
    shared = {h.forward_resource for r in topo.hops for h in r if {h.src, h.dst} == {"src", "r"}}
    assert shared == {"link:src-r"}
    assert topo.owners["link:src-r"] == "src"


def test_invalid_plan_and_schedule_shape_are_refused() -> None:
    problem = line_problem("mlp-digits", 8)
    with pytest.raises(PlanError, match="not the source"):
        build_topology(problem, Plan((Stage("a", 1, 4),), (), 4))
    table = get_schedule("gpipe").table(1, 3)
    with pytest.raises(ProblemError, match="the plan needs"):
        build_topology(problem, Plan((Stage("src", 1, 4),), (), 4), table)
