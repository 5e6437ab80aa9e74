"""``pipesl demo``: the whole story in about two minutes (what ``make demo`` runs).

1. Plan the default scenario (VGG-16 over a multi-hop campus network) with the exact planner
   (least simulated makespan of ``training.schedule``, as ``pipesl plan``), beside the
   non-pipelined baseline (b = B); simulate one iteration; draw its Gantt chart and placement
   map.
2. Train for real: VGG-16 takes seconds per pass on a laptop CPU, far more than the
   milliseconds its planned GPUs need, so a CPU cannot emulate them. The training part runs
   the ``iot-digits`` scenario instead — the zoo's digits CNN on a microcontroller, a HaLow
   relay and two Raspberry Pi-class boxes, whose planned passes and transfers last tens of
   milliseconds while the real compute takes about one. It plans, simulates, trains a few
   iterations on local processes (one per node, relays included) with emulated devices and
   links on scikit-learn's digits, and prints measured against simulated and analytic times.

Everything is written to ``--out`` (default ``demo-out/``, git-ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from pipesl.cli.app import app, console, load_checked
from pipesl.cli.plan import plan_table
from pipesl.cli.train import (
    TRAIN_DEFAULT,
    _runtime,
    result_tables,
    run_with_progress,
    summary_line,
    write_outputs,
)
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.problem.scenarios import DEFAULT_SCENARIO
from pipesl.units import format_quantity

if TYPE_CHECKING:
    from pipesl.problem import Problem
    from pipesl.sim import SimResult
    from pipesl.solvers import SolveResult


def _s(seconds: float) -> str:
    return format_quantity(seconds, "seconds")


def _plan_and_simulate(prob: Problem, name: str, out: Path) -> tuple[SolveResult, SimResult]:
    """Plan (with the non-pipelined comparison), simulate, write plan JSON, Gantt and map."""
    from pipesl.plan import dump_plan
    from pipesl.plotting import gantt_chart, placement_map, save_figure
    from pipesl.sim import simulate
    from pipesl.solvers import solve

    with console.status(f"planning {name}...", spinner="dots"):
        result = solve(prob)  # what `pipesl plan` prints: least simulated makespan
    console.print(plan_table(prob, result))
    for k, route in enumerate(result.plan.routes, 1):
        console.print(f"route {k}: {escape(' -> '.join(route))}")
    line = (f"{prob.training.schedule} makespan {_s(result.objective_s)} per iteration with "
            f"b = {result.micro_batch_size} (M = {result.num_micro_batches})")
    batch = prob.training.batch_size
    if result.num_micro_batches > 1:
        try:
            flat = solve(prob, micro_batch_size=batch)
            line += (f"; without pipelining (b = B = {batch}) {_s(flat.objective_s)}: "
                     f"[bold]{flat.objective_s / result.objective_s:.2f}x[/] speed-up")
        except InfeasibleError:
            line += f"; without pipelining (b = B = {batch}) no plan fits in memory"
    console.print(line)
    sim = simulate(prob, result.plan, last_micro_batch="remainder")
    console.print(f"simulated makespan {_s(sim.makespan_s)} (analytic {_s(sim.analytic_s)}, "
                  f"{sim.relative_gap:+.1%}); bubbles {sim.bubble_fraction:.0%} of compute")
    dump_plan(result.document(), out / f"{name}-plan.json")
    save_figure(gantt_chart(sim), out / f"{name}-gantt-simulated.png")
    save_figure(placement_map(prob, result.plan), out / f"{name}-map.png")
    console.print(f"wrote {out}/{name}-plan.json, {name}-gantt-simulated.png, {name}-map.png")
    return result, sim


@app.command()
def demo(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help="Problem to plan and simulate."),
    train_problem: str = typer.Option(
        TRAIN_DEFAULT, "--train-problem", help="Problem to train for real (its planned "
        "passes must be much longer than their real compute on this machine)."),
    steps: int = typer.Option(20, "--steps", "-n", min=1, help="Training iterations."),
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output folder."),
    train: bool = typer.Option(True, "--train/--no-train", help="Run the training part."),
) -> None:
    """Plan -> simulate -> train for real with emulated devices and links -> measured vs
    predicted, with Gantt charts and placement maps in --out."""
    if out.exists() and not out.is_dir():
        raise ProblemError("--out", "is a file; give a folder", str(out))
    out.mkdir(parents=True, exist_ok=True)
    prob = load_checked(problem)
    name = prob.name or Path(problem).stem
    console.rule(f"[bold]1. Plan and simulate: {escape(name)}")
    if prob.description:
        console.print(escape(prob.description))
    _plan_and_simulate(prob, name, out)
    if not train:
        return

    runtime = _runtime()  # fails with one line when torch is missing
    tprob = load_checked(train_problem)
    tname = tprob.name or Path(train_problem).stem
    console.rule(f"[bold]2. Train for real: {escape(tname)}")
    if tprob.description:
        console.print(escape(tprob.description))
    result, _ = _plan_and_simulate(tprob, tname, out)
    cfg = runtime.build_config(runtime.RunConfig(), steps=steps, data="digits", lr=0.1,
                               momentum=0.9)
    nodes = ", ".join(runtime.build_topology(tprob, result.plan).nodes)
    console.print(f"training {steps} iterations of B = {tprob.training.batch_size} digits on "
                  f"one process per node ({nodes}), devices and links emulated...")
    trained = run_with_progress(runtime, tprob, result.plan, cfg)
    written = write_outputs(trained, out=out / f"{tname}-train.json",
                            gantt=out / f"{tname}-gantt-measured.png")
    for table in result_tables(trained):
        console.print(table)
    console.print(summary_line(trained))
    for line in written:
        console.print(f"wrote {line}")
