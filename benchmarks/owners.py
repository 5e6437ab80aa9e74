"""The many-owner planner's running time and gap: owners x nodes, joint and heuristic.

For each (owners, nodes) point a generated edge network
(:func:`pipesl.experiments.owners.many_owners`: ``edge_network`` with ``owners - 1`` relays
turned into devices, a 12-layer CNN, B = 32 per owner) is planned by ``joint`` (certified
search, time limit per solve; on instances too large to enumerate it returns the heuristic's
plan with ``status = too_large``) and ``heuristic``. Prints a markdown table (seconds, the
simulated makespan, the lower bound of every combination, the gap, the status), then one
summary line.

Run: ``.venv/bin/python benchmarks/owners.py [--time-limit 60] [--seed 0]
[--points 2x20 5x50 10x100 20x200 50x200]``.
"""

from __future__ import annotations

import argparse
import time

from pipesl.experiments.owners import many_owners
from pipesl.experiments.runner import markdown_table
from pipesl.solvers.owners import solve_owners

POINTS = ("2x20", "3x30", "5x50", "10x100", "20x200", "50x200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points", nargs="*", default=list(POINTS),
                        help="OWNERSxNODES, e.g. 50x200")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for point in args.points:
        owners, nodes = (int(x) for x in point.split("x"))
        problem = many_owners(nodes, owners, seed=args.seed)
        for method in ("joint", "heuristic"):
            r = solve_owners(problem, method, time_limit=args.time_limit)
            rows.append({"owners": owners, "nodes": nodes, "method": method,
                         "seconds": r.seconds, "makespan (ms)": 1e3 * r.makespan_s,
                         "lower bound (ms)": 1e3 * r.lower_bound_s,
                         "gap": f"{100 * r.gap:.1f} %", "status": r.status})
            print(f"{point} {method}: {r.seconds:.1f} s, {1e3 * r.makespan_s:.1f} ms, "
                  f"gap {100 * r.gap:.1f} %, {r.status}", flush=True)
    print()
    print(markdown_table(rows))
    big = [r for r in rows if r["method"] == "heuristic"]
    worst = max(big, key=lambda r: r["seconds"])
    print(f"{len(rows)} solves in {time.perf_counter() - started:.0f} s; heuristic at "
          f"{worst['owners']} owners x {worst['nodes']} nodes: {worst['seconds']:.1f} s, gap "
          f"{worst['gap']}; joint certified on "
          f"{sum(r['status'] == 'optimal' for r in rows if r['method'] == 'joint')}/"
          f"{len(big)} points")


if __name__ == "__main__":
    main()
