"""``pipesl evaluate PROBLEM PLAN``: a plan's schedule makespan, analytic T, loads and memory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipesl.cli.app import (
    JSON,
    app,
    check_writable,
    console,
    load_checked,
    print_json,
    require_single_owner,
    write_file,
)
from pipesl.cli.render import escape, evaluation_tables, objective_line
from pipesl.units import format_quantity


@app.command()
def evaluate(
    problem: str = typer.Argument(..., help="Problem file or built-in scenario name."),
    plan: str = typer.Argument(..., help="Plan JSON file (SPEC section 4)."),
    json_out: bool = typer.Option(False, "--json",
                                  help="Print the SPEC plan object plus feasibility fields."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write that JSON object to a "
                                    "file (.json)."),
    objective: str = typer.Option("makespan", "--objective",
                                  help="What objective_s reports: makespan (the simulated "
                                  "makespan of training.schedule) or analytic (SPEC T)."),
) -> None:
    """Evaluate a plan: its schedule makespan, T, bottleneck, resource loads and memory.

    ``objective_s`` is the simulated makespan of ``training.schedule`` (what ``pipesl
    simulate --plan`` reports), ``analytic_s`` SPEC section 3's T and ``lower_bound_s`` the
    plan's proven makespan lower bound, as in ``pipesl plan --json``; ``--objective
    analytic`` reports T as ``objective_s`` (and as its own lower bound). A plan that breaks
    memory is still evaluated and reported infeasible; a structurally invalid plan exits 1
    with the reason.
    """
    from pipesl.cost import evaluate as evaluate_plan
    from pipesl.cost import plan_document
    from pipesl.exceptions import ProblemError
    from pipesl.plan import load_single_plan
    from pipesl.schedules import makespan_lower_bound
    from pipesl.solvers import OBJECTIVES, plan_makespan
    if objective not in OBJECTIVES:
        raise ProblemError("--objective", f"must be one of {', '.join(OBJECTIVES)}", objective)
    check_writable(out, "--out", JSON)
    prob = require_single_owner(load_checked(problem), "pipesl evaluate")
    chosen = load_single_plan(plan, prob, "pipesl evaluate")
    ev = evaluate_plan(prob, chosen)
    if objective == "makespan":
        value, bound = plan_makespan(prob, chosen), makespan_lower_bound(prob, chosen)
    else:
        value = bound = ev.objective_s
    document = {"objective_s": value, "analytic_s": ev.objective_s, "lower_bound_s": bound,
                "objective": objective}
    document.update((k, v) for k, v in plan_document(ev).items() if k != "objective_s")
    if out is not None:
        write_file(lambda: out.write_text(json.dumps(document, indent=2) + "\n"), out, "--out")
    if json_out:
        print_json(document)
        return
    for table in evaluation_tables(prob, ev):
        console.print(table)
    console.print(objective_line(ev))
    if objective == "makespan":
        console.print(f"simulated {escape(prob.training.schedule)} makespan "
                      f"[bold]{format_quantity(value, 'seconds')}[/] (what runs; analytic T "
                      f"{format_quantity(ev.objective_s, 'seconds')}, proven lower bound "
                      f"{format_quantity(bound, 'seconds')})")
    if ev.feasible:
        console.print("[green]feasible[/]: every stage fits in its node's memory")
    else:
        for v in ev.violations:
            console.print(f"[bold red]infeasible[/]: {escape(v)}")
    if out is not None:
        console.print(f"wrote {escape(str(out))}")
