"""``pipesl evaluate PROBLEM PLAN``: a plan's costs under SPEC section 3."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipesl.cli.app import JSON, app, check_writable, console, load_checked, print_json, write_file
from pipesl.cli.render import escape, evaluation_tables, objective_line


@app.command()
def evaluate(
    problem: str = typer.Argument(..., help="Problem file or built-in scenario name."),
    plan: str = typer.Argument(..., help="Plan JSON file (SPEC section 4)."),
    json_out: bool = typer.Option(False, "--json",
                                  help="Print the SPEC plan object plus feasibility fields."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write that JSON object to a "
                                    "file (.json)."),
) -> None:
    """Evaluate a plan: T, first micro-batch, bottleneck, resource loads and memory.

    A plan that breaks memory is still evaluated and reported infeasible; a structurally
    invalid plan exits 1 with the reason.
    """
    from pipesl.cost import evaluate as evaluate_plan
    from pipesl.cost import plan_document
    from pipesl.plan import load_single_plan
    check_writable(out, "--out", JSON)
    prob = load_checked(problem)
    ev = evaluate_plan(prob, load_single_plan(plan, prob, "pipesl evaluate"))
    document = plan_document(ev)
    if out is not None:
        write_file(lambda: out.write_text(json.dumps(document, indent=2) + "\n"), out, "--out")
    if json_out:
        print_json(document)
        return
    for table in evaluation_tables(prob, ev):
        console.print(table)
    console.print(objective_line(ev))
    if ev.feasible:
        console.print("[green]feasible[/]: every stage fits in its node's memory")
    else:
        for v in ev.violations:
            console.print(f"[bold red]infeasible[/]: {escape(v)}")
    if out is not None:
        console.print(f"wrote {escape(str(out))}")
