"""The cost model (SPEC section 3) on tiny hand-computed cases.

Every expected figure is written as arithmetic on the literals of the problem, straight from
the SPEC formulas:

* compute stage: ``t = b * sum(fwd + bwd) / flops + 2 * overhead``;
* link hop: ``x = 8 * b * out_bytes / bandwidth + latency``, ``t = 2 * x``;
* half-duplex link load: sum of ``2x`` over its hops; full duplex: ``x`` of every hop on each
  direction;
* ``T = sum t_s + (M - 1) * max load``, ``M = ceil(B / b)``.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from typing import Any

import numpy as np
import pytest

from pipesl.cost import (
    Affine,
    Resource,
    compute_time,
    evaluate,
    feasible_micro_batch_sizes,
    hop_time,
    link_resources,
    memory_use,
    num_micro_batches,
    objective,
    plan_document,
    plan_stages,
    resource_loads,
    resource_name,
)
from pipesl.plan import Plan, Stage
from pipesl.problem import Link, Problem, problem_from_dict


def approx(value: Any) -> Any:
    return pytest.approx(value, rel=1e-12, abs=1e-15)


def make(doc: dict[str, Any], **training: Any) -> Problem:
    doc = copy.deepcopy(doc)
    doc["training"].update(training)
    return problem_from_dict(doc)


# ---------------------------------------------------------------- a line with a relay

# dev0 --(half, 100 Mbit/s, 1 ms)-- r1 (relay) --(full, 200 Mbit/s, 2 ms; written es2 -> r1)-- es2
LINE: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "dev0", "flops": 1e12, "overhead": 1e-3, "memory": 1e9},
            {"id": "r1", "compute": False},
            {"id": "es2", "flops": 4e12, "overhead": 5e-4, "memory": 1e9},
        ],
        "links": [
            {"source": "dev0", "target": "r1", "bandwidth": 1e8, "latency": 1e-3},
            {"source": "es2", "target": "r1", "bandwidth": 2e8, "latency": 2e-3,
             "duplex": "full"},
        ],
    },
    "model": {
        "name": "tiny",
        "input_bytes": 3072,
        "layers": [
            {"name": "a", "fwd_flops": 1e9, "out_bytes": 1e4, "param_bytes": 1e3,
             "act_bytes": 2e4},
            {"name": "b", "fwd_flops": 2e9, "bwd_flops": 4e9, "out_bytes": 100,
             "param_bytes": 5e3, "act_bytes": 1e3},
        ],
    },
    "training": {"source": "dev0", "batch_size": 32},
}
LINE_PLAN = Plan((Stage("dev0", 1, 1), Stage("es2", 2, 2)), (("dev0", "r1", "es2"),), 8)


def test_line_with_relay_stage_times_loads_and_objective() -> None:
    problem = make(LINE)
    ev = evaluate(problem, LINE_PLAN)
    t_dev0 = 8 * (1e9 + 2 * 1e9) / 1e12 + 2 * 1e-3  # bwd defaults to 2 x fwd
    x_a = 8 * 8 * 1e4 / 1e8 + 1e-3
    x_b = 8 * 8 * 1e4 / 2e8 + 2e-3
    t_es2 = 8 * (2e9 + 4e9) / 4e12 + 2 * 5e-4
    first = t_dev0 + 2 * x_a + 2 * x_b + t_es2
    assert [t for _, t in ev.stage_times] == approx([t_dev0, 2 * x_a, 2 * x_b, t_es2])
    assert ev.first_micro_batch_s == approx(first)
    assert ev.resource_loads == approx({
        "node:dev0": t_dev0,
        "link:dev0-r1": 2 * x_a,
        "link:r1>es2": x_b,
        "link:es2>r1": x_b,
        "node:es2": t_es2,
    })
    assert set(ev.resource_loads) == {"node:dev0", "link:dev0-r1", "link:r1>es2",
                                      "link:es2>r1", "node:es2"}
    # The relay costs nothing itself.
    assert "node:r1" not in ev.resource_loads
    assert ev.num_micro_batches == 32 // 8
    assert ev.bottleneck_resource == "node:dev0"
    assert ev.bottleneck_s == approx(t_dev0)
    assert ev.objective_s == approx(first + (4 - 1) * t_dev0)
    assert objective(problem, LINE_PLAN) == approx(first + 3 * t_dev0)


def test_line_objective_at_other_micro_batch_sizes() -> None:
    problem = make(LINE)
    # b = B = 32: M = 1, T is the first micro-batch's trip (the non-pipelined baseline).
    t0 = 32 * 3e9 / 1e12 + 2e-3
    xa = 8 * 32 * 1e4 / 1e8 + 1e-3
    xb = 8 * 32 * 1e4 / 2e8 + 2e-3
    t2 = 32 * 6e9 / 4e12 + 1e-3
    assert objective(problem, LINE_PLAN, 32) == approx(t0 + 2 * xa + 2 * xb + t2)
    # b = 1: M = 32.
    t0 = 1 * 3e9 / 1e12 + 2e-3
    xa = 8 * 1 * 1e4 / 1e8 + 1e-3
    xb = 8 * 1 * 1e4 / 2e8 + 2e-3
    t2 = 1 * 6e9 / 4e12 + 1e-3
    first = t0 + 2 * xa + 2 * xb + t2
    assert objective(problem, LINE_PLAN, 1) == approx(first + 31 * max(t0, 2 * xa, xb, t2))


def test_micro_batches_when_b_does_not_divide_b() -> None:
    problem = make(LINE, batch_size=10)
    plan = LINE_PLAN.with_micro_batch_size(4)
    assert num_micro_batches(10, 4) == 3
    assert num_micro_batches(10, 3) == 4
    assert num_micro_batches(10, 10) == 1
    assert num_micro_batches(10, 1) == 10
    t0 = 4 * 3e9 / 1e12 + 2e-3
    xa = 8 * 4 * 1e4 / 1e8 + 1e-3
    xb = 8 * 4 * 1e4 / 2e8 + 2e-3
    t2 = 4 * 6e9 / 4e12 + 1e-3
    ev = evaluate(problem, plan)
    assert ev.num_micro_batches == 3
    # Every micro-batch is costed at b samples, the last (2 samples) included.
    assert ev.objective_s == approx(t0 + 2 * xa + 2 * xb + t2 + (3 - 1) * t0)


def test_single_stage_plan_has_only_the_source() -> None:
    problem = make(LINE)
    plan = Plan((Stage("dev0", 1, 2),), (), 16)
    ev = evaluate(problem, plan)
    t = 16 * (3e9 + 6e9) / 1e12 + 2e-3
    assert ev.resource_loads == approx({"node:dev0": t})
    assert ev.objective_s == approx(t + (2 - 1) * t)


# ---------------------------------------------------------------- a diamond: two routes

# s --(half 1e8, 1 ms)-- a --(half 1e8)-- t      a, c relays
# s --(full 5e7)-------- c --(full 5e7)-- t
DIAMOND: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "s", "flops": 1e12},
            {"id": "a", "flops": 0},
            {"id": "c", "flops": 5e12, "compute": False},
            {"id": "t", "flops": 2e12, "overhead": 1e-4},
        ],
        "links": [
            {"source": "s", "target": "a", "bandwidth": 1e8, "latency": 1e-3},
            {"source": "a", "target": "t", "bandwidth": 1e8},
            {"source": "s", "target": "c", "bandwidth": 5e7, "duplex": "full"},
            {"source": "t", "target": "c", "bandwidth": 5e7, "duplex": "full"},
        ],
    },
    "model": {
        "name": "two",
        "input_bytes": 10,
        "layers": [
            {"name": "l1", "fwd_flops": 1e8, "out_bytes": 1e5},
            {"name": "l2", "fwd_flops": 1e8, "out_bytes": 10},
        ],
    },
    "training": {"source": "s", "batch_size": 16},
}


def test_diamond_each_route_has_its_own_cost() -> None:
    problem = make(DIAMOND)
    t_s = 4 * 3e8 / 1e12
    t_t = 4 * 3e8 / 2e12 + 2 * 1e-4
    via_a = evaluate(problem, Plan((Stage("s", 1, 1), Stage("t", 2, 2)), (("s", "a", "t"),), 4))
    x_sa = 8 * 4 * 1e5 / 1e8 + 1e-3
    x_at = 8 * 4 * 1e5 / 1e8
    assert via_a.resource_loads == approx({"node:s": t_s, "link:s-a": 2 * x_sa,
                                           "link:a-t": 2 * x_at, "node:t": t_t})
    assert via_a.bottleneck_resource == "link:s-a"
    assert via_a.objective_s == approx(t_s + 2 * x_sa + 2 * x_at + t_t + 3 * 2 * x_sa)

    via_c = evaluate(problem, Plan((Stage("s", 1, 1), Stage("t", 2, 2)), (("s", "c", "t"),), 4))
    x = 8 * 4 * 1e5 / 5e7
    assert via_c.resource_loads == approx({"node:s": t_s, "link:s>c": x, "link:c>s": x,
                                           "link:c>t": x, "link:t>c": x, "node:t": t_t})
    assert via_c.bottleneck_s == approx(x)
    assert via_c.objective_s == approx(t_s + 2 * x + 2 * x + t_t + 3 * x)
    # The slower full-duplex route costs more on the first trip but less in the pipeline.
    assert via_c.first_micro_batch_s > via_a.first_micro_batch_s
    assert via_c.bottleneck_s < via_a.bottleneck_s


# ---------------------------------------------------------------- a star: hub link used twice

# Leaves s, e1, e2 around the relay hub h. The link e1-h is written "e1 -> h".
# Route 1 (s -> e1) and route 2 (e1 -> e2) both cross e1-h.
STAR: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "s", "flops": 1e12},
            {"id": "h", "compute": False},
            {"id": "e1", "flops": 1e12},
            {"id": "e2", "flops": 1e12},
        ],
        "links": [
            {"source": "s", "target": "h", "bandwidth": 1e9},
            {"source": "e1", "target": "h", "bandwidth": 1e8, "latency": 1e-3},
            {"source": "h", "target": "e2", "bandwidth": 1e9},
        ],
    },
    "model": {
        "name": "three",
        "input_bytes": 10,
        "layers": [
            {"name": "l1", "fwd_flops": 1e8, "out_bytes": 2e4},
            {"name": "l2", "fwd_flops": 1e8, "out_bytes": 1e4},
            {"name": "l3", "fwd_flops": 1e8, "out_bytes": 10},
        ],
    },
    "training": {"source": "s", "batch_size": 64},
}
STAR_PLAN = Plan((Stage("s", 1, 1), Stage("e1", 2, 2), Stage("e2", 3, 3)),
                 (("s", "h", "e1"), ("e1", "h", "e2")), 8)


def _star(duplex: str) -> Problem:
    doc = copy.deepcopy(STAR)
    doc["network"]["links"][1]["duplex"] = duplex
    return problem_from_dict(doc)


# Per micro-batch of b = 8 samples:
T_C = 8 * 3e8 / 1e12                 # every compute stage
X_SH = 8 * 8 * 2e4 / 1e9             # route 1, s -> h (layer 1 output)
X_1 = 8 * 8 * 2e4 / 1e8 + 1e-3       # route 1, h -> e1 (layer 1 output)
X_2 = 8 * 8 * 1e4 / 1e8 + 1e-3       # route 2, e1 -> h (layer 2 output)
X_HE2 = 8 * 8 * 1e4 / 1e9            # route 2, h -> e2 (layer 2 output)
STAR_FIRST = 3 * T_C + 2 * X_SH + 2 * X_1 + 2 * X_2 + 2 * X_HE2


def test_star_half_duplex_hub_link_carries_both_hops() -> None:
    ev = evaluate(_star("half"), STAR_PLAN)
    assert ev.resource_loads == approx({
        "node:s": T_C, "node:e1": T_C, "node:e2": T_C,
        "link:s-h": 2 * X_SH,
        "link:e1-h": 2 * X_1 + 2 * X_2,   # one resource, named as written in the input
        "link:h-e2": 2 * X_HE2,
    })
    assert ev.first_micro_batch_s == approx(STAR_FIRST)
    assert ev.bottleneck_resource == "link:e1-h"
    assert ev.objective_s == approx(STAR_FIRST + (8 - 1) * (2 * X_1 + 2 * X_2))
    # Shared: the bottleneck exceeds every single stage time.
    assert ev.bottleneck_s > max(t for _, t in ev.stage_times)


def test_star_full_duplex_hub_link_splits_by_direction() -> None:
    ev = evaluate(_star("full"), STAR_PLAN)
    assert ev.resource_loads == approx({
        "node:s": T_C, "node:e1": T_C, "node:e2": T_C,
        "link:s-h": 2 * X_SH,
        "link:h>e1": X_1 + X_2,
        "link:e1>h": X_1 + X_2,
        "link:h-e2": 2 * X_HE2,
    })
    assert ev.first_micro_batch_s == approx(STAR_FIRST)
    assert ev.bottleneck_s == approx(X_1 + X_2)
    assert ev.bottleneck_resource in ("link:h>e1", "link:e1>h")
    assert ev.objective_s == approx(STAR_FIRST + 7 * (X_1 + X_2))


# ---------------------------------------------------------------- U-shaped label route

# s --(half 1e8, 1 ms)-- r (relay) --(full 1e8)-- e;  labels at s.
USHAPE: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "s", "flops": 1e12, "overhead": 1e-3},
            {"id": "r", "flops": 0},
            {"id": "e", "flops": 1e13},
        ],
        "links": [
            {"source": "s", "target": "r", "bandwidth": 1e8, "latency": 1e-3},
            {"source": "r", "target": "e", "bandwidth": 1e8, "duplex": "full"},
        ],
    },
    "model": {
        "name": "u",
        "input_bytes": 10,
        "layers": [
            {"name": "l1", "fwd_flops": 1e9, "bwd_flops": 1e9, "out_bytes": 1e4},
            {"name": "l2", "fwd_flops": 4e9, "bwd_flops": 8e9, "out_bytes": 4e3},
        ],
    },
    "training": {"source": "s", "batch_size": 16, "labels_at": "s"},
}


def test_u_shaped_label_route_hops_are_stages_and_loads() -> None:
    problem = problem_from_dict(copy.deepcopy(USHAPE))
    plan = Plan((Stage("s", 1, 1), Stage("e", 2, 2)), (("s", "r", "e"),), 4, ("e", "r", "s"))
    ev = evaluate(problem, plan)
    t_s = 4 * 2e9 / 1e12 + 2 * 1e-3
    t_e = 4 * 12e9 / 1e13
    x1_sr = 8 * 4 * 1e4 / 1e8 + 1e-3
    x1_re = 8 * 4 * 1e4 / 1e8
    x2_er = 8 * 4 * 4e3 / 1e8      # the last layer's output travels back to the labels
    x2_rs = 8 * 4 * 4e3 / 1e8 + 1e-3
    assert [t for _, t in ev.stage_times] == approx(
        [t_s, 2 * x1_sr, 2 * x1_re, t_e, 2 * x2_er, 2 * x2_rs])
    assert ev.resource_loads == approx({
        "node:s": t_s,
        "link:s-r": 2 * x1_sr + 2 * x2_rs,
        "link:r>e": x1_re + x2_er,
        "link:e>r": x1_re + x2_er,
        "node:e": t_e,
    })
    first = t_s + 2 * x1_sr + 2 * x1_re + t_e + 2 * x2_er + 2 * x2_rs
    assert ev.objective_s == approx(first + 3 * (2 * x1_sr + 2 * x2_rs))
    kinds = [st.kind for st in plan_stages(problem, plan)]
    assert kinds == ["compute", "hop", "hop", "compute", "hop", "hop"]
    assert [st.layer for st in plan_stages(problem, plan) if st.kind == "hop"] == [1, 1, 2, 2]


def test_labels_on_the_last_stage_add_nothing() -> None:
    doc = copy.deepcopy(USHAPE)
    base = problem_from_dict(doc)
    doc["training"]["labels_at"] = "e"
    at_e = problem_from_dict(doc)
    doc["training"]["labels_at"] = None
    plain = problem_from_dict(doc)
    plan = Plan((Stage("s", 1, 1), Stage("e", 2, 2)), (("s", "r", "e"),), 4)
    assert evaluate(at_e, plan).objective_s == approx(evaluate(plain, plan).objective_s)
    trivial = Plan(plan.stages, plan.routes, 4, ("e",))
    assert evaluate(at_e, trivial).objective_s == approx(evaluate(plain, plan).objective_s)
    # Labels at the source cost more than labels on the last stage.
    u_plan = Plan(plan.stages, plan.routes, 4, ("e", "r", "s"))
    assert evaluate(base, u_plan).objective_s > evaluate(plain, plan).objective_s


# ---------------------------------------------------------------- memory: gpipe vs 1f1b

# A line a - b - c, three stages of one layer each; B = 10, b = 4, M = 3.
MEMORY: dict[str, Any] = {
    "network": {
        "nodes": [{"id": n, "flops": 1e12} for n in ("a", "b", "c")],
        "links": [{"source": "a", "target": "b", "bandwidth": 1e9},
                  {"source": "b", "target": "c", "bandwidth": 1e9}],
    },
    "model": {
        "name": "mem",
        "input_bytes": 1,
        "layers": [
            {"name": "l1", "fwd_flops": 1e6, "out_bytes": 50, "param_bytes": 1000,
             "act_bytes": 100},
            {"name": "l2", "fwd_flops": 1e6, "out_bytes": 50, "param_bytes": 2000,
             "act_bytes": 200},
            {"name": "l3", "fwd_flops": 1e6, "out_bytes": 50, "param_bytes": 3000},
        ],
    },
    "training": {"source": "a", "batch_size": 10, "state_factor": 2.5},
}
MEMORY_PLAN = Plan((Stage("a", 1, 1), Stage("b", 2, 2), Stage("c", 3, 3)),
                   (("a", "b"), ("b", "c")), 4)


def test_gpipe_keeps_every_sample_of_the_batch() -> None:
    use = memory_use(make(MEMORY, schedule="gpipe"), MEMORY_PLAN)
    # W * b = B = 10; act_bytes of l3 defaults to its out_bytes (50).
    assert use == approx({"a": 2.5 * 1000 + 10 * 100, "b": 2.5 * 2000 + 10 * 200,
                          "c": 2.5 * 3000 + 10 * 50})
    assert memory_use(make(MEMORY, schedule="gpipe"), MEMORY_PLAN, 1) == use


def test_1f1b_keeps_min_of_m_and_stages_left() -> None:
    problem = make(MEMORY, schedule="1f1b")
    # W = min(M, K - k + 1): k = 1 -> min(3, 3); k = 2 -> min(3, 2); k = 3 -> min(3, 1).
    assert memory_use(problem, MEMORY_PLAN) == approx({
        "a": 2.5 * 1000 + 3 * 4 * 100,
        "b": 2.5 * 2000 + 2 * 4 * 200,
        "c": 2.5 * 3000 + 1 * 4 * 50,
    })
    # b = 1: M = 10, W = K - k + 1.
    assert memory_use(problem, MEMORY_PLAN, 1) == approx({
        "a": 2.5 * 1000 + 3 * 1 * 100,
        "b": 2.5 * 2000 + 2 * 1 * 200,
        "c": 2.5 * 3000 + 1 * 1 * 50,
    })
    # b = 10: M = 1, W = 1 everywhere.
    assert memory_use(problem, MEMORY_PLAN, 10) == approx({
        "a": 2.5 * 1000 + 10 * 100, "b": 2.5 * 2000 + 10 * 200, "c": 2.5 * 3000 + 10 * 50,
    })


def test_feasible_micro_batch_sizes_1f1b_is_not_monotone() -> None:
    doc = copy.deepcopy(MEMORY)
    doc["network"]["nodes"][0]["memory"] = 2.5 * 1000 + 10 * 100   # a holds 10 samples
    problem = make(doc, schedule="1f1b")
    plan = Plan((Stage("a", 1, 1), Stage("b", 2, 3)), (("a", "b"),), 1)
    # Stage 1 of K = 2 keeps min(ceil(10 / b), 2) * b samples for b = 1..10:
    #   2, 4, 6, 8, 10, 12, 14, 16, 18, 10
    mask = feasible_micro_batch_sizes(problem, plan)
    assert mask.dtype == np.bool_
    assert mask.tolist() == [True] * 5 + [False] * 4 + [True]
    for b in range(1, 11):
        assert evaluate(problem, plan.with_micro_batch_size(b)).feasible == mask[b - 1]


def test_feasible_micro_batch_sizes_gpipe_is_all_or_nothing() -> None:
    doc = copy.deepcopy(MEMORY)
    doc["network"]["nodes"][1]["memory"] = 2.5 * (2000 + 3000) + 10 * (200 + 50)
    problem = make(doc, schedule="gpipe")
    plan = Plan((Stage("a", 1, 1), Stage("b", 2, 3)), (("a", "b"),), 1)
    assert feasible_micro_batch_sizes(problem, plan).tolist() == [True] * 10
    doc["network"]["nodes"][1]["memory"] = 2.5 * (2000 + 3000) + 10 * (200 + 50) - 1
    problem = make(doc, schedule="gpipe")
    assert feasible_micro_batch_sizes(problem, plan).tolist() == [False] * 10


def test_evaluate_reports_a_memory_breaking_plan_with_its_objective() -> None:
    doc = copy.deepcopy(LINE)
    doc["network"]["nodes"][2]["memory"] = 1000.0
    problem = make(doc)
    ev = evaluate(problem, LINE_PLAN)
    assert not ev.feasible
    assert len(ev.violations) == 1
    assert "es2" in ev.violations[0]
    assert "memory" in ev.violations[0]
    need = 3.0 * 5e3 + 32 * 1e3   # state_factor 3 (default) x params + B x act_bytes
    assert ev.memory["es2"] == approx((need, 1000.0))
    assert ev.memory["dev0"] == approx((3.0 * 1e3 + 32 * 2e4, 1e9))
    # Still fully evaluated: same T as with enough memory.
    assert ev.objective_s == approx(evaluate(make(LINE), LINE_PLAN).objective_s)
    doc_out = plan_document(ev)
    assert doc_out["feasible"] is False
    assert doc_out["violations"] == list(ev.violations)
    assert doc_out["objective_s"] == approx(ev.objective_s)


# ---------------------------------------------------------------- the affine form and names


def test_affine_form_of_stage_times() -> None:
    problem = make(LINE)
    c = compute_time(problem, "dev0", 1, 2)
    assert c.alpha == approx((1e9 + 2e9 + 2e9 + 4e9) / 1e12)
    assert c.beta == approx(2 * 1e-3)
    h = hop_time(problem, "r1", "es2", 1)   # either orientation finds the link
    assert h.alpha == approx(2 * 8 * 1e4 / 2e8)
    assert h.beta == approx(2 * 2e-3)
    for b in (1, 7, 32):
        assert c(b) == approx(b * 9e9 / 1e12 + 2e-3)
        assert h(b) == approx(2 * (8 * b * 1e4 / 2e8 + 2e-3))
    s = Affine(1.0, 2.0) + Affine(0.5, -1.0)
    assert (s.alpha, s.beta) == (1.5, 1.0)
    assert s(4) == 7.0
    assert Affine(1.0, 2.0).scaled(3.0) == Affine(3.0, 6.0)
    # Loads are stored affine too: evaluating them at b gives the evaluation's loads.
    loads = resource_loads(problem, LINE_PLAN)
    assert all(isinstance(a, Affine) for a in loads.values())
    assert {r.name: a(8) for r, a in loads.items()} == approx(evaluate(problem, LINE_PLAN)
                                                               .resource_loads)
    with pytest.raises(KeyError):
        hop_time(problem, "dev0", "es2", 1)


def test_resource_names() -> None:
    assert resource_name("node", "dev0") == "node:dev0"
    assert resource_name("link", "u", "v") == "link:u-v"
    assert resource_name("link", "u", "v", full_duplex=True) == "link:u>v"
    x = Affine(1.0, 0.5)
    half = Link("b", "a", 1e8, duplex="half")
    # A half-duplex link keeps its input orientation whatever the hop's direction.
    assert link_resources(half, "a", "b", x) == ((Resource("link", "b", "a"), Affine(2.0, 1.0)),)
    assert link_resources(half, "a", "b", x)[0][0].name == "link:b-a"
    full = Link("b", "a", 1e8, duplex="full")
    assert link_resources(full, "a", "b", x) == ((Resource("link", "a", "b", True), x),
                                                 (Resource("link", "b", "a", True), x))
    assert [r.name for r, _ in link_resources(full, "a", "b", x)] == ["link:a>b", "link:b>a"]
    # typed values compare by their fields, not by identity, and pickle across processes
    assert Resource("node", "a") == Resource("node", "a") != Resource("node", "b")
    assert hash(Resource("link", "u", "v")) == hash(Resource("link", "u", "v"))
    assert pickle.loads(pickle.dumps(Resource("link", "u", "v", True))) == Resource(
        "link", "u", "v", True)


def test_plan_document_is_the_spec_object() -> None:
    problem = make(LINE)
    ev = evaluate(problem, LINE_PLAN)
    doc = plan_document(ev, solver={"name": "hand", "optimal": False, "seconds": 0.0})
    for key in ("objective_s", "micro_batch_size", "num_micro_batches", "batch_size", "stages",
                "routes", "label_route", "first_micro_batch_s", "bottleneck_s",
                "bottleneck_resource", "resource_loads", "solver", "feasible", "violations",
                "memory", "stage_times_s"):
        assert key in doc, key
    assert doc["stages"] == [{"node": "dev0", "first_layer": 1, "last_layer": 1},
                             {"node": "es2", "first_layer": 2, "last_layer": 2}]
    assert doc["routes"] == [["dev0", "r1", "es2"]]
    assert doc["label_route"] is None
    assert (doc["batch_size"], doc["micro_batch_size"], doc["num_micro_batches"]) == (32, 8, 4)
    assert doc["memory"]["es2"]["capacity_bytes"] == 1e9
    assert len(doc["stage_times_s"]) == 4
    assert "feasible" not in plan_document(ev, extra=False)
    # Unbounded memory is written as null so that the JSON stays standard.
    doc2 = copy.deepcopy(LINE)
    del doc2["network"]["nodes"][2]["memory"]
    out = plan_document(evaluate(make(doc2), LINE_PLAN))
    assert out["memory"]["es2"]["capacity_bytes"] is None
    assert json.loads(json.dumps(out, allow_nan=False))["objective_s"] == approx(ev.objective_s)
    assert math.isfinite(out["objective_s"])
