"""``pipesl simulate``: run one iteration of a plan through the discrete-event simulator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipesl.cli.app import (
    FIGURE,
    JSON,
    PROBLEM_HELP,
    app,
    check_writable,
    console,
    err_console,
    load_checked,
    print_json,
    seconds_text,
    warn_memory,
    write_file,
)
from pipesl.cli.render import escape
from pipesl.exceptions import PlanError, ProblemError
from pipesl.problem.scenarios import DEFAULT_SCENARIO
from pipesl.schedules import get_schedule, schedule_names

if TYPE_CHECKING:
    from rich.table import Table

    from pipesl.plan import OwnersPlan, Plan
    from pipesl.problem import Problem
    from pipesl.sim import LastMicroBatch, SimResult


def _plan(problem: Problem, path: Path | None, method: str = "exact") -> Plan | OwnersPlan:
    if path is not None:
        from pipesl.plan import load_plan

        return load_plan(path, problem)
    from pipesl.plan import OwnersPlan
    from pipesl.solvers import solve

    # As `pipesl plan` plans by default: the schedule's makespan.
    with err_console.status(f"planning with {method}...", spinner="dots"):
        result = solve(problem, method, objective="makespan")
    plan: Plan | OwnersPlan = result.plan
    if problem.is_multi_owner and not isinstance(plan, OwnersPlan):
        raise PlanError(f"plan: the planner returned one owner's plan for a problem with "
                        f"{problem.num_owners} data owners; give --plan with an owners plan")
    return plan


def _tables(result: SimResult) -> list[Table]:
    from rich.table import Table

    summary = Table(title=f"Simulated iteration ({result.schedule})", title_justify="left",
                    show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rel = f" ({result.relative_gap:+.1%})" if result.analytic_s > 0 else ""
    rows = [
        ("micro-batches", f"M = {result.num_micro_batches} of b = {result.micro_batch_size} "
                          f"(last: {result.last_micro_batch_size}), B = {result.batch_size}"),
        ("makespan (simulated)", seconds_text(result.makespan_s)),
        ("T (analytic, SPEC 3)", seconds_text(result.analytic_s)),
        ("gap", f"{result.gap_s * 1e3:+.4g} ms{rel}"),
        ("first micro-batch trip", seconds_text(result.first_micro_batch_s)),
        ("bottleneck (analytic)", f"{escape(result.bottleneck_resource)}: "
                                  f"{seconds_text(result.bottleneck_s)} per micro-batch"),
        ("bubble fraction", f"{result.bubble_fraction:.1%} of compute time idle"),
    ]
    for what, value in rows:
        summary.add_row(what, value)
    resources = Table(title="Resources", title_justify="left")
    for col in ("resource", "busy", "utilisation"):
        resources.add_column(col, justify="left" if col == "resource" else "right")
    for r, busy in result.busy_s.items():
        resources.add_row(escape(r), seconds_text(busy), f"{result.utilisation[r]:.1%}")
    memory = Table(title="Activations in flight (peak)", title_justify="left")
    for col in ("node", "stage", "micro-batches", "samples", "SPEC W*b"):
        memory.add_column(col, justify="left" if col == "node" else "right")
    for node, m in result.memory.items():
        memory.add_row(escape(node), str(m.stage + 1), str(m.peak_micro_batches),
                       str(m.peak_samples),
                       "-" if m.spec_samples is None else f"{m.spec_samples:g}")
    return [summary, resources, memory]


@app.command()
def simulate(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help=PROBLEM_HELP),
    plan: Annotated[Path | None, typer.Option(
        "--plan", help="Plan JSON file (SPEC section 4); default: plan first with --method, "
        "as `pipesl plan` does.")] = None,
    method: str = typer.Option("exact", "--method", "-m", help="Without --plan: the planner "
                               "(see `pipesl plan --help`)."),
    schedule: str | None = typer.Option(
        None, "--schedule", help=f"{' | '.join(schedule_names())}; default: the problem's "
        "training.schedule."),
    gantt: Annotated[Path | None, typer.Option(
        "--gantt", help="Write a Gantt chart (PNG).")] = None,
    map_path: Annotated[Path | None, typer.Option(
        "--map", help="Write a placement map (PNG).")] = None,
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="Write the trace as Chrome trace JSON (chrome://tracing, "
        "Perfetto).")] = None,
    last_micro_batch: str = typer.Option(
        "full", "--last-micro-batch", help="full (every micro-batch has b samples, as the "
        "analytic T assumes) | remainder (the last has B - (M-1) b)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result summary as JSON."),
) -> None:
    """Simulate one training iteration of a plan; report makespan beside the analytic T."""
    if schedule is not None:
        get_schedule(schedule)  # an unknown name fails before any planning
    if last_micro_batch not in ("full", "remainder"):
        raise ProblemError("--last-micro-batch", "must be 'full' or 'remainder'",
                           last_micro_batch)
    for path, option, kinds in ((gantt, "--gantt", FIGURE), (map_path, "--map", FIGURE),
                                (trace, "--trace", JSON)):
        check_writable(path, option, kinds)
    from pipesl.sim import simulate as simulate_plan

    prob = load_checked(problem)
    if plan is not None and method != "exact":
        raise ProblemError("--method", "plans only without --plan (the plan file is "
                           "simulated as it is)", method)
    from pipesl.plan import OwnersPlan

    chosen = _plan(prob, plan, method)
    last: LastMicroBatch = "remainder" if last_micro_batch == "remainder" else "full"
    if isinstance(chosen, OwnersPlan):
        _simulate_owners(prob, chosen, schedule, last, json_out, gantt, map_path, trace,
                         problem)
        return
    warn_memory(prob, chosen)
    result = simulate_plan(prob, chosen, schedule, last_micro_batch=last)
    out = err_console if json_out else console
    if json_out:  # the report first: it is out even if a write fails
        print_json(result.to_dict())
    else:
        for table in _tables(result):
            console.print(table)
    written: list[str] = []
    if trace is not None:
        write_file(lambda: result.trace.dump_chrome(trace, name=f"pipesl {prob.name or problem}"),
                   trace, "--trace")
        written.append(f"trace {trace}")
    if gantt is not None or map_path is not None:
        from pipesl.plotting import gantt_chart, placement_map, save_figure

        if gantt is not None:
            chart = gantt_chart(result)
            write_file(lambda: save_figure(chart, gantt), gantt, "--gantt")
            written.append(f"Gantt chart {gantt}")
        if map_path is not None:
            drawing = placement_map(prob, chosen)
            write_file(lambda: save_figure(drawing, map_path), map_path, "--map")
            written.append(f"placement map {map_path}")
    for line in written:
        out.print(f"wrote {escape(line)}")


def _simulate_owners(prob: Problem, chosen: OwnersPlan, schedule: str | None,
                     last: LastMicroBatch, json_out: bool, gantt: Path | None,
                     map_path: Path | None, trace: Path | None, name: str) -> None:
    """``pipesl simulate`` on a problem with several data owners."""
    from pipesl.cli.owners import owners_sim_tables
    from pipesl.sim import simulate_owners

    result = simulate_owners(prob, chosen, schedule, last_micro_batch=last)
    for violation in result.violations:
        err_console.print(f"[yellow]warning:[/] the plan does not fit in memory: "
                          f"{escape(violation)}")
    out = err_console if json_out else console
    if json_out:
        print_json(result.to_dict())
    else:
        for table in owners_sim_tables(result):
            console.print(table)
    written: list[str] = []
    if trace is not None:
        write_file(lambda: result.trace.dump_chrome(trace, name=f"pipesl {prob.name or name}"),
                   trace, "--trace")
        written.append(f"trace {trace}")
    if gantt is not None:
        from pipesl.plotting import gantt_chart, save_figure

        title = (f"{result.num_owners} data owners ({result.mode}, {result.schedule}) · "
                 f"makespan {seconds_text(result.makespan_s)} · bound "
                 f"{seconds_text(result.lower_bound_s)}")
        chart = gantt_chart(result.trace, title=title)
        write_file(lambda: save_figure(chart, gantt), gantt, "--gantt")
        written.append(f"Gantt chart {gantt}")
    if map_path is not None:
        from pipesl.plotting import placement_map, save_figure

        drawing = placement_map(prob, chosen)
        write_file(lambda: save_figure(drawing, map_path), map_path, "--map")
        written.append(f"placement map {map_path}")
    for line in written:
        out.print(f"wrote {escape(line)}")
