"""``pipesl show`` and ``pipesl scenarios``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pipesl.cli.app import (
    PROBLEM_HELP,
    app,
    check_writable,
    console,
    err_console,
    load_checked,
    print_json,
    write_file,
)
from pipesl.cli.render import escape, network_tables, problem_tables
from pipesl.exceptions import ProblemError
from pipesl.problem.scenarios import DEFAULT_SCENARIO, list_builtins


def _network_only(argument: str) -> bool:
    """Whether ``argument`` names a bare network (GraphML, node-link, a SPEC network file or a
    built-in network) rather than a problem."""
    from pipesl.problem.io import _exists, load_document
    from pipesl.problem.scenarios import builtin_names

    path = Path(argument)
    if path.suffix.lower() == ".graphml":
        return True
    if _exists(path) and path.is_file():
        doc = load_document(path)
        return isinstance(doc, dict) and "training" not in doc and (
            "nodes" in doc or ("network" in doc and "model" not in doc))
    return argument not in builtin_names("scenario") and argument in builtin_names("network")


@app.command()
def show(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help=PROBLEM_HELP + " A network file on "
                                  "its own (GraphML, node-link JSON, SPEC network) shows the "
                                  "network."),
    json_out: bool = typer.Option(False, "--json", help="Print the problem (or network) as "
                                  "SPEC JSON."),
    geo_latency: bool = typer.Option(
        False, "--geo-latency", help="GraphML with Latitude/Longitude (Topology Zoo): a link "
        "without latency gets the great-circle distance at the speed of light in fibre."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write what is shown as a file: a problem as .json/.yaml, a "
        "network as .yaml/.json (node-link)/.graphml."),
) -> None:
    """Show a problem's nodes, links, model and training options (or a bare network)."""
    from pipesl.problem import (
        dump_network,
        dump_problem,
        load_network,
        network_to_dict,
        problem_to_dict,
    )

    check_writable(out, "--out", (".json", ".yaml", ".yml", ".graphml"))
    if _network_only(problem):
        net = load_network(problem, geo_latency=geo_latency)
        if out is not None:
            write_file(lambda: dump_network(net, out), out, "--out")
        if json_out:
            print_json({"network": network_to_dict(net)})
        else:
            console.rule(f"[bold]{escape(problem)}[/] (a network)")
            for table in network_tables(net):
                console.print(table)
            if not net.compute_nodes:
                console.print("no compute nodes yet: give nodes flops (and memory) to plan "
                              "on this network (docs/formats.md)")
        if out is not None:
            (err_console if json_out else console).print(f"wrote {escape(str(out))}")
        return
    if geo_latency:
        raise ProblemError("--geo-latency", "applies to a GraphML network file on its own")
    prob = load_checked(problem)
    if out is not None:
        if out.suffix.lower() == ".graphml":
            raise ProblemError("--out", "a problem is written as .json or .yaml (GraphML holds "
                               "a network only)", str(out))
        write_file(lambda: dump_problem(prob, out), out, "--out")
    if json_out:
        print_json(problem_to_dict(prob))
    else:
        title = prob.name or problem
        console.rule(f"[bold]{escape(title)}")
        if prob.description:
            console.print(escape(prob.description))
        for table in problem_tables(prob):
            console.print(table)
    if out is not None:
        (err_console if json_out else console).print(f"wrote {escape(str(out))}")


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
