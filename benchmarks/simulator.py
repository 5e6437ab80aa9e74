"""Time the pipeline simulator: micro-batches x compute stages -> seconds and events/s.

Builds a line network of K compute nodes joined by K - 1 links (alternately half and full
duplex), a chain of K layers, one layer per stage, and simulates one iteration of M
micro-batches (b = 1, B = M) under both schedules. Each pipeline has 2K - 1 steps (K compute
stages and K - 1 hops), so an iteration is 2 (2K - 1) M tasks, one event each.

Run: ``.venv/bin/python benchmarks/simulator.py [--profile]``. Target: 1000 x 50 in under 2 s.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from pipesl.plan import Plan, Stage
from pipesl.problem import ChainModel, Layer, Link, Network, Node, Problem, TrainingSpec
from pipesl.sim import simulate


def line_problem(num_stages: int, num_micro_batches: int) -> tuple[Problem, Plan]:
    """K compute nodes on a line, one layer each; B = M, b = 1."""
    nodes = tuple(Node(f"n{i}", flops=1e12 * (1 + 0.1 * (i % 3)), overhead=1e-4)
                  for i in range(num_stages))
    links = tuple(Link(f"n{i}", f"n{i + 1}", bandwidth=1e9, latency=1e-4,
                       duplex="half" if i % 2 else "full") for i in range(num_stages - 1))
    layers = tuple(Layer(f"l{i}", fwd_flops=1e9, bwd_flops=2e9, out_bytes=1e5)
                   for i in range(num_stages))
    problem = Problem(Network(nodes, links), ChainModel("chain", 1e5, layers),
                      TrainingSpec(source="n0", batch_size=num_micro_batches))
    plan = Plan(tuple(Stage(f"n{i}", i + 1, i + 1) for i in range(num_stages)),
                tuple((f"n{i}", f"n{i + 1}") for i in range(num_stages - 1)), 1)
    return problem, plan


def time_one(num_micro_batches: int, num_stages: int, schedule: str,
             repeats: int = 3) -> tuple[float, int]:
    """Best wall time of ``simulate`` over ``repeats`` runs, and the number of tasks."""
    problem, plan = line_problem(num_stages, num_micro_batches)
    best = float("inf")
    tasks = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = simulate(problem, plan, schedule)
        best = min(best, time.perf_counter() - t0)
        tasks = len(result.trace)
    return best, tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one 1000 x 50 1F1B run and print the top functions")
    args = parser.parse_args()
    if args.profile:
        problem, plan = line_problem(50, 1000)
        profiler = cProfile.Profile()
        profiler.enable()
        simulate(problem, plan, "1f1b")
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    print(f"{'M':>6} {'K':>4} {'steps':>6} {'schedule':>8} {'tasks':>9} {'seconds':>8} "
          f"{'events/s':>10}")
    for m, k in [(10, 5), (100, 10), (100, 50), (1000, 10), (1000, 50)]:
        for schedule in ("gpipe", "1f1b"):
            seconds, tasks = time_one(m, k, schedule)
            print(f"{m:>6} {k:>4} {2 * k - 1:>6} {schedule:>8} {tasks:>9} {seconds:>8.3f} "
                  f"{tasks / seconds:>10.0f}")


if __name__ == "__main__":
    main()
