"""``pipesl demo``: the main job on the default scenario (what ``make demo`` runs)."""

from __future__ import annotations

import networkx as nx
import typer

from pipesl.cli.app import app, console
from pipesl.cli.render import evaluation_tables, objective_line, problem_tables
from pipesl.cost import evaluate
from pipesl.plan import Plan, Stage
from pipesl.problem import DEFAULT_SCENARIO, Problem, load_problem


def hand_plan(problem: Problem) -> Plan:
    """A sensible two-stage plan made by hand rules, not by the planner.

    The source runs the layers up to the smallest activation in the first half of the model;
    the fastest compute node it reaches runs the rest, over a min-hop route.
    """
    net, model, tr = problem.network, problem.model, problem.training
    half = max(1, model.num_layers // 2)
    cut = min(range(1, half + 1), key=lambda layer: (model.out_bytes(layer), -layer))
    reach = nx.single_source_shortest_path(net.graph, tr.source)
    servers = [n for n in net.compute_nodes if n.id != tr.source and n.id in reach]
    b = tr.micro_batch_size or max(1, tr.batch_size // 8)
    if not servers or cut == model.num_layers:
        return Plan((Stage(tr.source, 1, model.num_layers),), (), b)
    server = max(servers, key=lambda n: n.flops)
    label = None
    if tr.labels_at is not None:
        label = tuple(nx.shortest_path(net.graph, server.id, tr.labels_at))
    return Plan((Stage(tr.source, 1, cut), Stage(server.id, cut + 1, model.num_layers)),
                (tuple(reach[server.id]),), b, label)


@app.command()
def demo(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help="Problem file or scenario name."),
) -> None:
    """Show the default scenario and evaluate a hand-made pipelined plan on it."""
    prob = load_problem(problem)
    console.rule(f"[bold]pipesl demo: {prob.name or problem}")
    if prob.description:
        console.print(prob.description)
    for table in problem_tables(prob):
        console.print(table)
    plan = hand_plan(prob)
    console.rule("[bold]A hand-made plan, evaluated by the SPEC cost model")
    ev = evaluate(prob, plan)
    for table in evaluation_tables(prob, ev):
        console.print(table)
    console.print(objective_line(ev))
