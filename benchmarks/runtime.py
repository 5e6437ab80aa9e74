"""Measured against predicted: real pipelined training on emulated networks.

For each row, trains a few iterations on local processes (one per network node, relays
included; devices and links emulated, see docs/runtime.md) and prints the analytic T, the
simulated makespan and the median measured iteration time (iterations after the first), with
the error of measured against simulated and, per scenario, the speed-up of each b over b = B
(the non-pipelined plan on the same placement and routes): predicted (simulator) against
measured.

Rows: the iot-digits scenario (planner's plan, b = B, and b in between), the same network with
the labels kept on the microcontroller (U-shaped: two routes share both radio links), 1F1B,
and the planner's plans again with the wall clock instead of the emulator's virtual clock
(every loopback and thread-scheduling delay of this host then adds to the measured time).

Run: ``.venv/bin/python benchmarks/runtime.py [--steps 4] [--quick]``; each row starts its
processes afresh (tens of seconds on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from pipesl.plan import Plan
from pipesl.problem import Problem, load_problem
from pipesl.runtime import build_config, train
from pipesl.solvers import solve


@dataclass(frozen=True)
class Row:
    label: str
    schedule: str
    clock: str
    b: int
    m: int
    analytic_s: float
    simulated_s: float
    measured_s: float
    group: str


def run_row(label: str, group: str, problem: Problem, plan: Plan, steps: int,
            schedule: str | None = None, virtual_clock: bool = True) -> Row:
    result = train(problem, plan, build_config(steps=steps, data="digits", schedule=schedule,
                                            virtual_clock=virtual_clock))
    b = plan.micro_batch_size
    return Row(label, result.schedule, "virtual" if virtual_clock else "wall", b,
               -(-problem.training.batch_size // b), result.analytic_s, result.simulated_s,
               result.median_measured_s(), group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="iterations per row")
    parser.add_argument("--quick", action="store_true",
                        help="only the planner's plans and b = B")
    args = parser.parse_args()
    iot = load_problem("iot-digits")
    ushaped = iot.with_training(labels_at="mcu")
    plan = solve(iot, objective="analytic").plan
    uplan = solve(ushaped, objective="analytic").plan
    batch = iot.training.batch_size
    rows: list[Row] = []
    started = time.perf_counter()
    cases: list[tuple[str, str, Problem, Plan, str | None, bool]] = [
        ("iot-digits, planner", "iot", iot, plan, None, True),
        ("iot-digits, b = B", "iot", iot, plan.with_micro_batch_size(batch), None, True),
        ("iot U-shaped, planner", "u", ushaped, uplan, None, True),
        ("iot U-shaped, b = B", "u", ushaped, uplan.with_micro_batch_size(batch), None, True),
    ]
    if not args.quick:
        cases[2:2] = [(f"iot-digits, b = {b}", "iot", iot, plan.with_micro_batch_size(b), None,
                       True) for b in (16, 32)]
        cases += [
            ("iot-digits, planner", "1f1b", iot, plan, "1f1b", True),
            ("iot-digits, b = B", "1f1b", iot, plan.with_micro_batch_size(batch), "1f1b",
             True),
            ("iot-digits, planner", "wall", iot, plan, None, False),
            ("iot-digits, b = B", "wall", iot, plan.with_micro_batch_size(batch), None, False),
            ("iot-digits, planner", "wall-1f1b", iot, plan, "1f1b", False),
            ("iot U-shaped, planner", "wall-u", ushaped, uplan, None, False),
        ]
    for label, group, problem, p, schedule, virtual in cases:
        rows.append(run_row(label, group, problem, p, args.steps, schedule, virtual))
        r = rows[-1]
        print(f"  ran {label} ({r.schedule}, {r.clock} clock): measured "
              f"{r.measured_s * 1e3:.1f} ms", flush=True)
    flat = {r.group: r for r in rows if r.m == 1}
    header = (f"{'plan':<24} {'sched':<6} {'clock':<8} {'b':>3} {'M':>3} {'analytic':>9} "
              f"{'simulated':>9} {'measured':>9} {'error':>7}  {'speed-up pred/meas':>18}")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        base = flat.get(r.group)
        speed = ""
        if base is not None and r.m > 1:
            speed = (f"{base.simulated_s / r.simulated_s:.2f}x / "
                     f"{base.measured_s / r.measured_s:.2f}x")
        print(f"{r.label:<24} {r.schedule:<6} {r.clock:<8} {r.b:>3} {r.m:>3} "
              f"{r.analytic_s * 1e3:>7.1f}ms {r.simulated_s * 1e3:>7.1f}ms "
              f"{r.measured_s * 1e3:>7.1f}ms {r.measured_s / r.simulated_s - 1:>+7.1%}  "
              f"{speed:>18}")
    print(f"\n{len(rows)} runs of {args.steps} iterations in "
          f"{time.perf_counter() - started:.0f} s (median over iterations 2..{args.steps})")


if __name__ == "__main__":
    main()
