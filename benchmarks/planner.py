"""Planner speed on generated multi-hop edge networks: prints a table of measured figures.

Usage::

    python benchmarks/planner.py            # the standard sizes (several minutes)
    python benchmarks/planner.py --quick    # small sizes only
    python benchmarks/planner.py --sizes 50x60x256 200x150x256 --kinds cnn transformer

Each row: a generated problem (``pipesl.experiments.generators.edge_problem``: random
geometric multi-hop edge network, ~35% of nodes edge servers, a chain model shaped like a CNN
or a transformer) solved by one method; seconds are wall-clock on this machine (shared and
noisy: treat them as indicative), counters come from the solver.
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
    parser.add_argument("--methods", nargs="*", default=["exact", "alternating"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = args.sizes or (QUICK if args.quick else STANDARD)
    table = Table(title="pipesl planner on generated multi-hop edge networks")
    for col in ("nodes", "layers", "B", "model", "seed", "method", "seconds", "T (s)", "K", "b",
                "DP passes", "Dijkstra", "gaps pruned", "b solved", "branches", "A* nodes",
                "optimal"):
        table.add_column(col, justify="right")
    console = Console(width=240)
    for size in sizes:
        n, layers, batch = (int(x) for x in size.split("x"))
        for kind in args.kinds:
            for seed in range(args.seeds):
                problem = edge_problem(n, layers, batch, seed=seed, kind=kind)
                for method in args.methods:
                    started = time.perf_counter()
                    try:
                        r = solve(problem, method, time_limit=args.time_limit)
                    except InfeasibleError as exc:
                        table.add_row(str(n), str(layers), str(batch), kind, str(seed), method,
                                      f"{time.perf_counter() - started:.2f}", "infeasible",
                                      "", "", "", "", "", "", "", "", str(exc)[:30])
                        continue
                    c = r.counters
                    table.add_row(
                        str(n), str(layers), str(batch), kind, str(seed), method,
                        f"{time.perf_counter() - started:.2f}", f"{r.objective_s:.4f}",
                        str(r.plan.num_stages), str(r.micro_batch_size),
                        str(c.get("dp_passes", "")), str(c.get("dijkstra_runs", "")),
                        str(c.get("gaps_pruned", "")),
                        f"{c.get('b_solved', '')}/{c.get('b_values', '')}",
                        str(c.get("branches", "")), str(c.get("search_nodes", "")),
                        "yes" if r.optimal else r.status)
                    console.print(f"{size} {kind} seed {seed} {method}: "
                                  f"{time.perf_counter() - started:.2f} s", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
