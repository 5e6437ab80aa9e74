"""CostTables (the vectorised cost model the solvers use) agrees with the scalar cost model.

Every array of :class:`pipesl.cost.CostTables` is compared, on random problems, with the
scalar functions of :mod:`pipesl.cost.model` that the simulator, the runtime and
``pipesl evaluate`` use: compute stage times, hop times, their affine parts, the memory need
of a stage, and T of a random plan rebuilt from the tables.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesl import cost
from pipesl.cost import CostTables
from pipesl.problem.types import Problem
from strategies import problems, random_plan


def _close(a: float, b: float, scale: float = 0.0) -> bool:
    """Equal up to rounding: the tables take differences of prefix sums over the layers, the
    scalar model sums the layers directly, so the error is relative to the whole model's
    figure (``scale``), not to the stage's."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * abs(scale) + 1e-300)


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(min_value=0, max_value=2**16))
def test_compute_times_agree_with_scalar(problem: Problem, seed: int) -> None:
    t = CostTables.from_problem(problem)
    r = random.Random(seed)
    L = t.num_layers
    b = r.randint(1, problem.training.batch_size)
    all_times = t.all_stage_times(b, np.arange(len(problem.network.nodes)))
    for k, node in enumerate(problem.network.nodes):
        if not node.can_compute:
            continue
        first = r.randint(1, L)
        last = r.randint(first, L)
        scalar = cost.compute_time(problem, node.id, first, last)
        whole = cost.compute_time(problem, node.id, 1, L)
        aff = t.compute_affine(k, first, last)
        assert _close(aff.alpha, scalar.alpha, whole.alpha) and _close(aff.beta, scalar.beta)
        assert _close(float(t.stage_alpha(k, first, last)), scalar.alpha, whole.alpha)
        assert _close(float(t.compute_beta[k]), scalar.beta)
        row = t.compute_times(b, first - 1)[k]
        assert _close(float(row[last - first]), scalar(b), whole(b))
        assert _close(float(all_times[k, first - 1, last]), scalar(b), whole(b))
        if first == last:
            assert _close(float(t.layer_alpha[k, first - 1]), scalar.alpha, whole.alpha)


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(min_value=0, max_value=2**16))
def test_hop_times_agree_with_scalar(problem: Problem, seed: int) -> None:
    t = CostTables.from_problem(problem)
    r = random.Random(seed)
    b = r.randint(1, problem.training.batch_size)
    hops = t.hop_times(b)
    for e, link in enumerate(problem.network.links):
        layer = r.randint(0, t.num_layers)
        scalar = cost.hop_time(problem, link.source, link.target, layer)
        aff = t.hop_affine(e, layer)
        assert _close(aff.alpha, scalar.alpha) and _close(aff.beta, scalar.beta)
        assert _close(float(t.hop_alpha[e, layer]), scalar.alpha)
        assert _close(float(t.hop_beta[e]), scalar.beta)
        assert _close(float(hops[e, layer]), scalar(b))
        assert _close(float(cost.hop_seconds(b, problem.model.out_bytes(layer),
                                             1.0 / link.bandwidth, link.latency)), scalar(b))
        # the busiest resource of the link carries load_share * t (SPEC section 3)
        loads = cost.link_resources(link, link.source, link.target,
                                    cost.transfer_time(link, problem.model.out_bytes(layer)))
        assert _close(max(a(b) for _, a in loads), float(t.load_share[e] * hops[e, layer]))


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(min_value=0, max_value=2**16))
def test_stage_memory_agrees_with_scalar(problem: Problem, seed: int) -> None:
    t = CostTables.from_problem(problem)
    r = random.Random(seed)
    L = t.num_layers
    b = r.randint(1, problem.training.batch_size)
    first = r.randint(1, L)
    last = r.randint(first, L)
    num_stages = r.randint(1, 4)
    k = r.randrange(num_stages)
    scalar = cost.stage_memory(problem, first, last, b, k, num_stages)
    whole = cost.stage_memory(problem, 1, L, b, k, num_stages)
    row = t.stage_memory(first - 1, b, num_stages - k)
    assert _close(float(row[last - first]), scalar, whole)
    if num_stages - k == 1:
        assert _close(float(t.all_stage_memory(b)[first - 1, last]), scalar, whole)


@settings(max_examples=40, deadline=None)
@given(problems(), st.integers(min_value=0, max_value=2**16))
def test_objective_from_tables_agrees_with_scalar(problem: Problem, seed: int) -> None:
    """T of a random plan summed from the tables' stage and hop times equals cost.objective."""
    t = CostTables.from_problem(problem)
    plan = random_plan(random.Random(seed), problem)
    b = plan.micro_batch_size
    idx = problem.network.node_index
    first_trip = 0.0
    loads: dict[str, float] = {}
    for s in plan.stages:
        x = float(t.compute_affine(idx[s.node], s.first_layer, s.last_layer)(b))
        first_trip += x
        loads[f"node:{s.node}"] = loads.get(f"node:{s.node}", 0.0) + x
    link_of = {frozenset((e.source, e.target)): i for i, e in enumerate(problem.network.links)}
    hops = t.hop_times(b)
    carried = [(route, s.last_layer) for route, s in zip(plan.routes, plan.stages, strict=False)]
    if plan.label_route is not None:
        carried.append((plan.label_route, t.num_layers))
    for route, layer in carried:
        for u, v in itertools.pairwise(route):
            e = link_of[frozenset((u, v))]
            link = problem.network.links[e]
            h = float(hops[e, layer])
            first_trip += h
            if link.duplex == "full":
                for key in (f"link:{u}>{v}", f"link:{v}>{u}"):
                    loads[key] = loads.get(key, 0.0) + h / 2
            else:
                key = f"link:{link.source}-{link.target}"
                loads[key] = loads.get(key, 0.0) + h
    m = cost.num_micro_batches(problem.training.batch_size, b)
    assert math.isclose(first_trip + (m - 1) * max(loads.values()),
                        cost.objective(problem, plan), rel_tol=1e-9)


def test_num_micro_batches_is_the_ceiling() -> None:
    sizes = np.arange(1, 101)
    assert cost.num_micro_batches(100, sizes).tolist() == [math.ceil(100 / b) for b in sizes]
    assert cost.num_micro_batches(7, 2) == 4 and cost.num_micro_batches(8, 2) == 4


def test_inverse_formulas_undo_the_forward_ones() -> None:
    """Drift and calibration read figures back with the inverses of the forward formulas."""
    bw, lat, out_bytes, n = 2.5e6, 3e-3, 1234.0, 7
    x = n * cost.transfer_bits(out_bytes) / bw + lat  # one-way transfer of n samples
    rate = cost.rate_from_seconds(cost.transfer_bits(out_bytes), n, x, lat)
    assert rate is not None and math.isclose(rate, bw, rel_tol=1e-12)
    assert cost.rate_from_seconds(1.0, n, lat, lat) is None  # no time above the fixed part
    flops, overhead, work = 3e9, 2e-3, 5e6
    alpha, beta = work / flops, 2 * overhead  # compute_time's affine form
    assert math.isclose(cost.flops_from_alpha(work, alpha), flops, rel_tol=1e-12)
    assert math.isclose(cost.overhead_from_beta(beta), overhead, rel_tol=1e-12)
    assert cost.overhead_from_beta(-1.0) == 0.0


def test_resource_names_follow_the_one_rule() -> None:
    """The typed resource and its string at the edges (SPEC section 4)."""
    assert cost.Resource("node", "pi-1").name == "node:pi-1"
    assert cost.Resource("link", "a-b", "c").name == "link:a-b-c"  # half duplex: as written
    assert cost.Resource("link", "a", "b", full_duplex=True).name == "link:a>b"
    assert cost.resource_name("link", "a", "b", True) == cost.Resource("link", "a", "b", True).name
