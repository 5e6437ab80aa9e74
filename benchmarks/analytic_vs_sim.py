"""Analytic T (SPEC section 3) against the simulated makespan (SPEC section 5).

Draws random problems and plans with the seeded generators of ``tests/strategies.py`` (random
connected networks with relays, half and full duplex links, random chain models, random
valid plans, U-shaped label routes in some), simulates every plan under GPipe and 1F1B, and
prints, per class of plan, how often the analytic T is exact, optimistic (simulation slower)
or pessimistic (simulation faster), and the distribution of simulated / analytic.

Classes: ``M = 1`` (one micro-batch); ``private`` when no physical resource carries two steps
of the pipeline, ``shared`` when some link carries two hops (a relay crossed twice, routes
that overlap, a label route back over the same link); ``chain`` when the last compute stage
holds the labels, ``labels`` when a label route follows it.

It also checks two closed forms (see docs/simulator.md) and, last, simulates the analytic
optimum on every built-in scenario under gpipe, 1f1b and 1f1b-net, and plans each scenario
for each schedule's own makespan (the certified search of ``pipesl.solvers.makespan``).

Run: ``.venv/bin/python benchmarks/analytic_vs_sim.py [--instances 2000]``.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pipesl.problem import builtin_names, load_problem
from pipesl.sim import plan_steps, simulate
from strategies import random_plan, random_problem

REL = 1e-9
"""Relative tolerance below which simulated and analytic count as equal."""


def classify(problem, plan) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    steps = plan_steps(problem, plan)
    uses = [r for s in steps for r in {s.forward_resource, s.backward_resource}]
    sharing = "shared" if len(uses) != len(set(uses)) else "private"
    labels = "labels" if plan.label_route is not None and len(plan.label_route) > 1 else "chain"
    return sharing, labels


def gpipe_closed_form(problem, plan, m_total: int) -> float:  # type: ignore[no-untyped-def]
    """sum(f + g) + (M - 1) (max f + max g): GPipe on a private chain (docs/simulator.md)."""
    b = plan.micro_batch_size
    steps = plan_steps(problem, plan)
    f = [s.forward(b) for s in steps]
    g = [s.backward(b) for s in steps]
    return sum(f) + sum(g) + (m_total - 1) * (max(f) + max(g))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def random_study(instances: int, seed: int) -> None:
    ratios: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    closed = [0, 0]
    window = defaultdict(lambda: [0, 0, 0])  # class -> [1f1b optimistic, of them LB > T, n]
    for i in range(instances):
        problem = random_problem(random.Random(seed + i), memory="unbounded")
        plan = random_plan(random.Random(seed + 10**6 + i), problem)
        sharing, labels = classify(problem, plan)
        for schedule in ("gpipe", "1f1b"):
            r = simulate(problem, plan, schedule)
            m_total = r.num_micro_batches
            key = ("M = 1", "any", schedule) if m_total == 1 else (sharing, labels, schedule)
            ratios[key].append(r.makespan_s / r.analytic_s)
            if m_total == 1:
                continue
            if schedule == "gpipe" and (sharing, labels) == ("private", "chain"):
                closed[1] += 1
                expected = gpipe_closed_form(problem, plan, m_total)
                closed[0] += math.isclose(r.makespan_s, expected, rel_tol=REL)
            if schedule == "1f1b":
                w = window[(sharing, labels)]
                w[2] += 1
                if r.makespan_s > r.analytic_s * (1 + REL):
                    w[0] += 1
                    bound = math.ceil(m_total / plan.num_stages) * r.first_micro_batch_s
                    w[1] += bound > r.analytic_s * (1 + REL)

    last = seed + instances - 1
    print(f"Random plans: {instances} problems x 2 schedules (seeds {seed}..{last})")
    print()
    print("| plans | labels | schedule | n | exact | optimistic | pessimistic "
          "| median sim/T | p90 | max | min |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = {"M = 1": 0, "private": 1, "shared": 2}
    for key in sorted(ratios, key=lambda k: (order[k[0]], k[1], k[2] != "gpipe")):
        v = ratios[key]
        n = len(v)
        exact = sum(abs(x - 1) <= REL for x in v)
        slow = sum(x > 1 + REL for x in v)
        fast = sum(x < 1 - REL for x in v)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {n} | {exact / n:.0%} | {slow / n:.0%} "
              f"| {fast / n:.0%} | {statistics.median(v):.3f} | {percentile(v, 0.9):.3f} "
              f"| {max(v):.3f} | {min(v):.3f} |")
    print()
    print(f"GPipe closed form sum(f+g) + (M-1)(max f + max g) on private chains: "
          f"{closed[0]} of {closed[1]} simulations match to 1e-9")
    print()
    print("| 1F1B plans | n | optimistic | of which ceil(M/K) x trip > T |")
    print("|---|---:|---:|---:|")
    for key, (slow, bounded, n) in sorted(window.items()):
        print(f"| {key[0]}, {key[1]} | {n} | {slow} | {bounded} |")


def scenario_study() -> None:
    import time

    from pipesl.solvers import solve

    schedules = ("gpipe", "1f1b", "1f1b-net")
    print()
    print("Built-in scenarios, the analytic optimum's plan (pipesl plan --objective analytic):")
    print()
    print("| scenario | K | b | M | analytic T | GPipe sim | gap | 1F1B sim | gap "
          "| 1F1B-net sim | gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    single = [n for n in builtin_names("scenario") if not load_problem(n).is_multi_owner]
    for name in single:  # several data owners have no analytic T (docs/owners.md)
        problem = load_problem(name)
        plan = solve(problem, objective="analytic").plan
        sims = [simulate(problem.with_training(schedule=x), plan) for x in schedules]
        g = sims[0]
        cells = " | ".join(f"{r.makespan_s * 1e3:.1f} ms | {r.relative_gap:+.1%}" for r in sims)
        print(f"| {name} | {plan.num_stages} | {plan.micro_batch_size} | "
              f"{g.num_micro_batches} | {g.analytic_s * 1e3:.1f} ms | {cells} |")
    print()
    print("Schedule-true optimum per schedule (pipesl plan, --objective makespan), against the "
          "analytic optimum's plan simulated under the same schedule:")
    print()
    print("| scenario | schedule | K | b | makespan | its T | makespan / T | analytic plan's "
          "makespan | saved | certified | lower bound | gap | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for name in single:
        base = load_problem(name)
        for x in schedules:
            problem = base.with_training(schedule=x)
            analytic = simulate(problem, solve(problem, objective="analytic").plan).makespan_s
            started = time.perf_counter()
            r = solve(problem, objective="makespan", time_limit=60.0)
            took = time.perf_counter() - started
            print(f"| {name} | {x} | {r.plan.num_stages} | {r.micro_batch_size} | "
                  f"{r.objective_s * 1e3:.1f} ms | {r.analytic_s * 1e3:.1f} ms | "
                  f"{r.objective_s / r.analytic_s:.3f} | {analytic * 1e3:.1f} ms | "
                  f"{1 - r.objective_s / analytic:.1%} | {'yes' if r.optimal else r.status} | "
                  f"{r.lower_bound_s * 1e3:.1f} ms | "
                  f"{(r.objective_s - r.lower_bound_s) / r.objective_s:.2%} | {took:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-scenarios", action="store_true",
                        help="skip the built-in scenarios (they need the planner)")
    args = parser.parse_args()
    random_study(args.instances, args.seed)
    if not args.no_scenarios:
        scenario_study()


if __name__ == "__main__":
    main()
