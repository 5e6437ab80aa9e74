"""``pipesl show`` and ``pipesl scenarios``."""

from __future__ import annotations

import typer
from rich.table import Table

from pipesl.cli.app import PROBLEM_HELP, app, console, print_json
from pipesl.cli.render import escape, problem_tables
from pipesl.problem.scenarios import DEFAULT_SCENARIO, list_builtins


@app.command()
def show(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help=PROBLEM_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the problem as SPEC JSON."),
) -> None:
    """Show a problem's nodes, links, model and training options."""
    from pipesl.problem import load_problem, problem_to_dict

    prob = load_problem(problem)
    if json_out:
        print_json(problem_to_dict(prob))
        return
    title = prob.name or problem
    console.rule(f"[bold]{escape(title)}")
    if prob.description:
        console.print(escape(prob.description))
    for table in problem_tables(prob):
        console.print(table)


@app.command()
def scenarios(
    json_out: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the built-in scenarios, networks and model profiles."""
    items = list_builtins()
    if json_out:
        print_json([{"kind": i.kind, "name": i.name, "description": i.description}
                    for i in items])
        return
    table = Table(title="Built-ins (use a scenario name wherever a PROBLEM is expected)",
                  title_justify="left")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("description")
    for i in items:
        name = f"{i.name} (default)" if i.kind == "scenario" and i.name == DEFAULT_SCENARIO \
            else i.name
        table.add_row(i.kind, name, i.description)
    console.print(table)
