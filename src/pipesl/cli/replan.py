"""``pipesl replan``: the optimal plan for a changed problem, and whether to switch to it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from pipesl.cli.app import (
    JSON,
    app,
    check_writable,
    console,
    err_console,
    load_checked,
    print_json,
    require_single_owner,
    write_file,
)
from pipesl.cli.plan import METHOD_HELP, plan_table
from pipesl.units import format_quantity


@app.command()
def replan(
    problem: str = typer.Argument(..., help="The changed problem (file or scenario name)."),
    plan: Path = typer.Option(..., "--plan", help="The plan the job runs now (JSON)."),
    horizon: int = typer.Option(100, "--horizon", "-r", min=0,
                                help="Iterations still to run (R)."),
    method: str = typer.Option("exact", "--method", "-m", help=METHOD_HELP),
    checkpoint_node: str = typer.Option(None, "--checkpoint-node",
                                        help="Where a departed node's state is restored from "
                                             "(default: the source)."),
    json_out: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the new plan JSON here."),
) -> None:
    """Re-plan a changed problem: new optimum, migration cost, and the switch decision.

    Switch when the gain per iteration times the remaining iterations exceeds the time it
    takes to move the model state; a plan whose node left (or that no longer fits) must switch.
    """
    from pipesl.adapt import replan as replan_problem
    from pipesl.plan import dump_plan, load_single_plan
    check_writable(out, "--out", JSON)
    prob = require_single_owner(load_checked(problem), "pipesl replan")
    old = load_single_plan(plan, prob, "pipesl replan")
    with err_console.status("re-planning...", spinner="dots"):
        decision = replan_problem(prob, old, horizon, method=method,
                                  checkpoint_node=checkpoint_node)
    if out is not None:
        write_file(lambda: dump_plan(decision.new.document(), out), out, "--out")
    if json_out:
        print_json(decision.document())
        return
    console.print(plan_table(prob, decision.new))
    table = Table(title="Switch decision", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    seconds = lambda v: format_quantity(v, "seconds")  # noqa: E731
    table.add_row("old plan T (changed problem)",
                  "invalid" if decision.old is None else seconds(decision.old.objective_s))
    table.add_row("new plan T", seconds(decision.new.objective_s))
    if decision.old is not None:
        table.add_row("gain per iteration", seconds(decision.gain_per_iteration_s))
        table.add_row(f"gain over {horizon} iterations",
                      seconds(decision.gain_per_iteration_s * horizon))
    table.add_row("state to move", format_quantity(decision.migration.total_bytes, "bytes"))
    table.add_row("migration time (estimated)", seconds(decision.migration.seconds))
    console.print(table)
    for t in decision.migration.transfers:
        route = escape(" -> ".join(t.route))
        console.print(f"  move {format_quantity(t.nbytes, 'bytes')} "
                      f"{escape(t.source)} -> {escape(t.target)} via {route}")
    verdict = "[bold green]SWITCH[/]" if decision.switch else "[bold]STAY[/]"
    console.print(f"{verdict}: {escape(decision.reason)}")
