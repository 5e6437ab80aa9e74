"""``pipesl.cost`` against an independent implementation of SPEC section 3 (tests/reference.py).

Hundreds of seeded random problems and plans (tests/strategies.py): lines, stars with a shared
hub, rings, trees and meshes, with relays, half- and full-duplex links, U-shaped label routes,
gpipe and 1f1b, fixed and free micro-batch sizes. A few go through the command line too.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings

from pipesl.cost import evaluate, objective, plan_document
from pipesl.plan import Plan, validate_plan
from pipesl.problem import Problem, dump_problem
from reference import Reference, reference_evaluation
from strategies import TOPOLOGIES, problems_and_plans, random_plan, random_problem

REL = 1e-9


def assert_matches(problem: Problem, plan: Plan, ref: Reference, label: object) -> None:
    ev = evaluate(problem, plan)
    assert ev.objective_s == pytest.approx(ref.objective_s, rel=REL), label
    assert ev.first_micro_batch_s == pytest.approx(ref.first_micro_batch_s, rel=REL), label
    assert ev.bottleneck_s == pytest.approx(ref.bottleneck_s, rel=REL), label
    assert ev.resource_loads[ev.bottleneck_resource] == pytest.approx(ref.bottleneck_s,
                                                                      rel=REL), label
    assert ev.resource_loads == pytest.approx(ref.resource_loads, rel=REL), label
    assert [t for _, t in ev.stage_times] == pytest.approx(ref.stage_times, rel=REL), label
    assert ev.num_micro_batches == ref.num_micro_batches, label
    assert {n: used for n, (used, _) in ev.memory.items()} == pytest.approx(ref.memory,
                                                                            rel=REL), label
    assert {n for n, (used, cap) in ev.memory.items() if used > cap} == ref.over_memory, label
    assert ev.feasible == (not ref.over_memory), label
    assert objective(problem, plan) == pytest.approx(ref.objective_s, rel=REL), label


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_cost_equals_reference_on_seeded_instances(topology: str) -> None:
    for seed in range(80):
        r = random.Random(f"{topology}-{seed}")
        problem = random_problem(r, r.randint(2, 9), r.randint(1, 7), topology)
        plan = random_plan(r, problem)
        assert_matches(problem, plan, reference_evaluation(problem, plan), (topology, seed))


def test_cost_equals_reference_at_every_micro_batch_size() -> None:
    for seed in range(10):
        r = random.Random(seed)
        problem = random_problem(r, 6, 5, batch_size=r.choice([7, 12, 30]),
                                 micro_batch_size=None)
        plan = random_plan(r, problem)
        for b in range(1, problem.training.batch_size + 1):
            p = plan.with_micro_batch_size(b)
            assert_matches(problem, p, reference_evaluation(problem, p), (seed, b))


@settings(max_examples=150, deadline=None)
@given(problems_and_plans())
def test_cost_equals_reference_hypothesis(pair: tuple[Problem, Plan]) -> None:
    problem, plan = pair
    assert_matches(problem, plan, reference_evaluation(problem, plan), plan)


def test_generated_instances_cover_the_hard_cases() -> None:
    """The random instances above do exercise shared links, duplex modes, U-shape, relays."""
    seen: Counter[str] = Counter()
    for topology in TOPOLOGIES:
        for seed in range(80):
            r = random.Random(f"{topology}-{seed}")
            problem = random_problem(r, r.randint(2, 9), r.randint(1, 7), topology)
            plan = random_plan(r, problem)
            validate_plan(problem, plan)
            hops = [hop for route in plan.all_routes() for hop in pairwise(route)]
            links = Counter(frozenset(h) for h in hops)
            net = problem.network
            relays = {n.id for n in net.nodes if not n.can_compute}
            seen["stages>=3"] += plan.num_stages >= 3
            seen["shared half link"] += any(
                c > 1 and net.link_between(*tuple(k)).duplex == "half"  # type: ignore[union-attr]
                for k, c in links.items())
            seen["shared full link"] += any(
                c > 1 and net.link_between(*tuple(k)).duplex == "full"  # type: ignore[union-attr]
                for k, c in links.items())
            seen["label route"] += bool(plan.label_route and len(plan.label_route) > 1)
            seen["relay on a route"] += any(v in relays for _, v in hops)
            seen["relay with flops"] += any(n.flops > 0 and not n.compute for n in net.nodes)
            seen["1f1b"] += problem.training.schedule == "1f1b"
            seen["shortest"] += problem.training.routing == "shortest"
            seen["b does not divide B"] += problem.training.batch_size % \
                plan.micro_batch_size != 0
            seen["memory violated"] += not evaluate(problem, plan).feasible
            seen["link as written reversed"] += any(
                (net.link_between(u, v).source, net.link_between(u, v).target)  # type: ignore[union-attr]
                == (v, u) for u, v in hops)
    for case in ("stages>=3", "shared half link", "shared full link", "label route",
                 "relay on a route", "relay with flops", "1f1b", "shortest",
                 "b does not divide B", "memory violated", "link as written reversed"):
        assert seen[case] >= 5, (case, seen)


def test_generators_are_deterministic_and_accept_numpy() -> None:
    import numpy as np

    a = random_problem(random.Random(3), 6, 4)
    assert random_problem(random.Random(3), 6, 4) == a
    assert random_problem(3, 6, 4) == a
    assert random_plan(5, a) == random_plan(random.Random(5), a)
    p1 = random_problem(np.random.default_rng(9), 5, 3)
    p2 = random_problem(np.random.default_rng(9), 5, 3)
    assert p1 == p2


# ---------------------------------------------------------------- through the CLI


def _cli_instances() -> list[tuple[Problem, Plan]]:
    out = []
    for topology, labels, schedule in [("star", "source", "gpipe"), ("mesh", "any", "1f1b"),
                                       ("ring", "none", "1f1b")]:
        r = random.Random(f"cli-{topology}")
        problem = random_problem(r, 7, 5, topology, labels=labels, schedule=schedule)
        out.append((problem, random_plan(r, problem)))
    return out


def test_cli_evaluate_equals_reference(tmp_path: Path) -> None:
    # The subprocesses run side by side: interpreter start-up dominates their time.
    runs = []
    for index, (problem, plan) in enumerate(_cli_instances()):
        problem_path = tmp_path / f"problem{index}{'.json' if index % 2 else '.yaml'}"
        dump_problem(problem, problem_path)
        plan_path = tmp_path / f"plan{index}.json"
        # Only the decisions: the CLI must recompute every figure.
        doc = plan_document(evaluate(problem, plan))
        decisions = {k: doc[k] for k in ("micro_batch_size", "stages", "routes", "label_route")}
        plan_path.write_text(json.dumps(decisions))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipesl", "evaluate", str(problem_path), str(plan_path),
             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs.append((reference_evaluation(problem, plan), proc))
    for ref, proc in runs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out = json.loads(stdout)
        assert out["analytic_s"] == pytest.approx(ref.objective_s, rel=REL)
        assert out["objective"] == "makespan"
        assert out["lower_bound_s"] <= out["objective_s"] * (1 + REL)
        assert out["first_micro_batch_s"] == pytest.approx(ref.first_micro_batch_s, rel=REL)
        assert out["bottleneck_s"] == pytest.approx(ref.bottleneck_s, rel=REL)
        assert out["resource_loads"] == pytest.approx(ref.resource_loads, rel=REL)
        assert out["num_micro_batches"] == ref.num_micro_batches
        assert out["feasible"] == (not ref.over_memory)
        assert {n: m["used_bytes"] for n, m in out["memory"].items()} == pytest.approx(
            ref.memory, rel=REL)
