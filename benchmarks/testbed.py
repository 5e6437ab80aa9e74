"""Measured against predicted on a real (kernel-shaped) network: the testbed.

Per scenario (``iot-digits``, and ``relay-pair``: a camera board, a Wi-Fi relay and two edge
servers), builds one Linux network namespace per node, a veth pair per link with the link's
bandwidth enforced by ``tc tbf`` (every link full duplex: tbf shapes each direction), probes
every link with ``pipesl probe`` over gloo, plans on the probed problem, trains that plan with
``pipesl worker`` in the namespaces (devices emulated by padding, links *not* paced by pipesl)
and prints

* per link and direction: the tbf rate against the probed goodput (within 10 %), the spread of
  the per-repetition fits, the configured latency against the probed per-transfer cost;
* per iteration (the first, start-up, left out): the measured wall clock against the simulator
  and the analytic T on the probed problem, and the simulator on the configured problem.

It ends with ``testbed: median error X %`` (the median of |measured / simulated - 1| over every
compared iteration of every scenario) and exits 1 when that is above 10 % or a probed
bandwidth is more than 10 % off its tbf rate. Needs root; every namespace, veth and qdisc is
removed afterwards (also on Ctrl-C).

Run: ``sudo .venv/bin/python benchmarks/testbed.py [--steps 6] [--reps 8] [--scenario NAME]``
(about a minute per scenario on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from rich.console import Console

from pipesl.cli.testbed import scenario_tables
from pipesl.problem import load_problem
from pipesl.testbed import measure_scenario, netns_unavailable

SCENARIOS = ("iot-digits", "relay-pair")
LIMIT = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    reason = netns_unavailable()
    if reason is not None:
        print(f"testbed: skipped: {reason}")
        return 0
    console = Console(width=120)
    errors: list[float] = []
    worst_link = 0.0
    started = time.perf_counter()
    for name in args.scenario or SCENARIOS:
        t0 = time.perf_counter()
        res = measure_scenario(load_problem(name), steps=args.steps, reps=args.reps)
        for table in scenario_tables(res):
            console.print(table)
        drops = sum(c["dropped"] for c in res.qdisc.values())
        console.print(f"{name}: median measured {res.measured_s * 1e3:.1f} ms, simulated "
                      f"(probed) {res.simulated_s * 1e3:.1f} ms, analytic (probed) "
                      f"{res.analytic_s * 1e3:.1f} ms, simulated (configured) "
                      f"{res.simulated_configured_s * 1e3:.1f} ms; qdisc drops {drops}; "
                      f"{time.perf_counter() - t0:.0f} s\n")
        errors += [abs(e) for e in res.errors]
        worst_link = max([worst_link, *(abs(r.error) for r in res.links)])
    median = statistics.median(errors)
    console.print(f"{len(errors)} iterations compared; worst probed bandwidth "
                  f"{100 * worst_link:.1f} % off its tbf rate; "
                  f"{time.perf_counter() - started:.0f} s in all")
    print(f"testbed: median error {100 * median:.1f} %")
    return 1 if median > LIMIT or worst_link > LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
