"""Planner speed on generated multi-hop edge networks: prints a table of measured figures.

Usage::

    python benchmarks/planner.py            # the standard sizes (several minutes)
    python benchmarks/planner.py --quick    # small sizes only
    python benchmarks/planner.py --sizes 50x60x256 200x150x256 --kinds cnn transformer

Each row: a generated problem (``pipesl.experiments.generators.edge_problem``: random
geometric multi-hop edge network, ~35% of nodes edge servers, a chain model shaped like a CNN
or a transformer) solved by one method; seconds are wall-clock on this machine (shared and
noisy: treat them as indicative), counters come from the solver. The ``makespan`` method is
the schedule-true optimum (``solve(..., objective="makespan")``: least simulated GPipe
makespan, certified by branch and bound); "x exact time" is its time over the exact analytic
solve of the same instance, and "A* nodes" holds its search states.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from pipesl.exceptions import InfeasibleError
from pipesl.experiments.generators import edge_problem
from pipesl.solvers import solve

STANDARD = ["20x30x256", "50x60x256", "100x100x256", "200x150x256"]
QUICK = ["20x30x64", "50x60x256"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", help="NODESxLAYERSxB entries")
    parser.add_argument("--kinds", nargs="*", default=["cnn", "transformer"])
    parser.add_argument("--methods", nargs="*", default=["exact", "alternating", "makespan"],
                        help="solvers; 'makespan' is the schedule-true optimum (objective "
                             "makespan), timed against the same instance's exact solve")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = args.sizes or (QUICK if args.quick else STANDARD)
    table = Table(title="pipesl planner on generated multi-hop edge networks")
    for col in ("nodes", "layers", "B", "model", "seed", "method", "seconds", "x exact time",
                "T (s)", "makespan (s)", "K", "b", "DP passes", "Dijkstra", "gaps pruned",
                "b solved", "branches", "A* nodes", "optimal"):
        table.add_column(col, justify="right")
    console = Console(width=240)
    ratios: list[tuple[str, float, bool]] = []
    for size in sizes:
        n, layers, batch = (int(x) for x in size.split("x"))
        for kind in args.kinds:
            for seed in range(args.seeds):
                problem = edge_problem(n, layers, batch, seed=seed, kind=kind)
                exact_s = None
                for method in args.methods:
                    started = time.perf_counter()
                    try:
                        if method == "makespan":
                            r = solve(problem, "exact", objective="makespan",
                                      time_limit=args.time_limit)
                        else:
                            r = solve(problem, method, objective="analytic",
                                      time_limit=args.time_limit)
                    except InfeasibleError as exc:
                        table.add_row(str(n), str(layers), str(batch), kind, str(seed), method,
                                      f"{time.perf_counter() - started:.2f}", "", "infeasible",
                                      "", "", "", "", "", "", "", "", "", str(exc)[:30])
                        continue
                    took = time.perf_counter() - started
                    if method == "exact":
                        exact_s = took
                    if method == "makespan" and exact_s:
                        ratios.append((size, took / exact_s, r.optimal))
                    c = r.counters
                    makespan = r.objective_s if r.objective == "makespan" else None
                    table.add_row(
                        str(n), str(layers), str(batch), kind, str(seed), method,
                        f"{took:.2f}",
                        f"{took / exact_s:.1f}" if exact_s and method != "exact" else "",
                        f"{r.analytic_s:.4f}",
                        f"{makespan:.4f}" if makespan is not None else "",
                        str(r.plan.num_stages), str(r.micro_batch_size),
                        str(c.get("dp_passes", "")), str(c.get("dijkstra_runs", "")),
                        str(c.get("gaps_pruned", "")),
                        f"{c.get('b_solved', '')}/{c.get('b_values', '')}",
                        str(c.get("branches", "")),
                        str(c.get("search_nodes", c.get("states", ""))),
                        "yes" if r.optimal else r.status)
                    console.print(f"{size} {kind} seed {seed} {method}: {took:.2f} s",
                                  style="dim")
    console.print(table)
    if ratios:
        within = sum(x <= 5.0 for _, x, _ in ratios)
        proven = sum(ok for _, _, ok in ratios)
        worst = max(x for _, x, _ in ratios)
        console.print(f"schedule-true optimum: within 5x the exact analytic time on {within} of "
                      f"{len(ratios)} instances (worst {worst:.1f}x), certified on {proven} of "
                      f"{len(ratios)}")


if __name__ == "__main__":
    main()
