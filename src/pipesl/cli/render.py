"""Rich renderings of problems, plans and evaluations for people (cli/ only).

Every string that comes from a user's file (ids, names, descriptions, resource names) goes
through :func:`rich.markup.escape`: rich reads ``[...]`` as markup, so a node called ``[/]``
would otherwise crash the command (and ``[link=...]`` would be obeyed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from pipesl.units import format_quantity

if TYPE_CHECKING:
    from pipesl.cost import Evaluation
    from pipesl.problem.types import Network, Problem, TrainingSpec

__all__ = ["escape", "evaluation_tables", "network_tables", "problem_tables"]


def _q(value: float, kind: str) -> str:
    return "unbounded" if math.isinf(value) else format_quantity(value, kind)


def network_tables(net: Network, training: TrainingSpec | None = None) -> list[Table]:
    """Tables of a network's nodes and links (with the source and label roles if known)."""
    nodes = Table(title=f"Nodes ({len(net.nodes)})", title_justify="left")
    for col in ("id", "kind", "compute", "FLOP/s", "memory", "overhead"):
        nodes.add_column(col, justify="right" if col not in ("id", "kind") else "left")
    for n in net.nodes:
        role = n.kind or ("server" if n.can_compute else "relay")
        if training is not None and n.id == training.source:
            role += " (source)"
        if training is not None and n.id == training.labels_at:
            role += " (labels)"
        nodes.add_row(escape(n.id), escape(role), "yes" if n.can_compute else "relay",
                      _q(n.flops, "flop_rate") if n.flops else "-",
                      _q(n.memory, "bytes"), _q(n.overhead, "seconds"))
    links = Table(title=f"Links ({len(net.links)})", title_justify="left")
    for col in ("link", "bandwidth", "latency", "duplex"):
        links.add_column(col, justify="left" if col == "link" else "right")
    for e in net.links:
        links.add_row(escape(f"{e.source} - {e.target}"), _q(e.bandwidth, "bandwidth"),
                      _q(e.latency, "seconds"), e.duplex)
    return [nodes, links]


def problem_tables(problem: Problem) -> list[Table]:
    """Tables of nodes, links, the model and the training options."""
    net, model, tr = problem.network, problem.model, problem.training
    nodes, links = network_tables(net, tr)
    layers = Table(title=f"Model {escape(model.name)}: {model.num_layers} layers, input "
                   f"{_q(model.input_bytes, 'bytes')}/sample", title_justify="left")
    for col in ("#", "layer", "fwd FLOP", "bwd FLOP", "output", "params", "saved act."):
        layers.add_column(col, justify="left" if col == "layer" else "right")
    for i, x in enumerate(model.layers, 1):
        layers.add_row(str(i), escape(x.name), _q(x.fwd_flops, "flops"),
                       _q(x.bwd_flops, "flops"),
                       _q(x.out_bytes, "bytes"), _q(x.param_bytes, "bytes"),
                       _q(x.act_bytes, "bytes"))
    total_f = sum(x.fwd_flops for x in model.layers)
    total_p = sum(x.param_bytes for x in model.layers)
    layers.caption = (f"total forward {_q(total_f, 'flops')}/sample, parameters "
                      f"{_q(total_p, 'bytes')}")
    training = Table(title="Training", title_justify="left", show_header=False)
    training.add_column("field")
    training.add_column("value")
    keys: tuple[str, ...] = ("source", "batch_size", "micro_batch_size", "schedule",
                             "state_factor", "routing", "labels_at")
    if problem.is_multi_owner:  # the per-owner fields are in the owners table
        keys = ("schedule", "state_factor", "routing", "owners_mode", "replicas")
    for key in keys:
        value = getattr(tr, key)
        training.add_row("owners" if key == "owners_mode" else key,
                         "optimise" if value is None and key == "micro_batch_size"
                         else escape(str(value)))
    if problem.is_multi_owner:
        from pipesl.cli.owners import owners_problem_table

        return [nodes, links, layers, training, owners_problem_table(problem)]
    return [nodes, links, layers, training]


def evaluation_tables(problem: Problem, ev: Evaluation) -> list[Table]:
    """Stage, resource and memory tables for an evaluated plan."""
    stages = Table(title="Pipeline stages (per micro-batch, forward + backward)",
                   title_justify="left")
    for col in ("#", "stage", "time"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    for i, (name, t) in enumerate(ev.stage_times, 1):
        stages.add_row(str(i), escape(name), _q(t, "seconds"))
    loads = Table(title="Resource loads per micro-batch", title_justify="left")
    loads.add_column("resource")
    loads.add_column("load", justify="right")
    loads.add_column("", justify="left")
    for r, v in sorted(ev.resource_loads.items(), key=lambda kv: -kv[1]):
        loads.add_row(escape(r), _q(v, "seconds"),
                      "bottleneck" if r == ev.bottleneck_resource else "")
    mem = Table(title="Memory", title_justify="left")
    for col in ("node", "used", "capacity", "fits"):
        mem.add_column(col, justify="left" if col == "node" else "right")
    for n, (used, cap) in ev.memory.items():
        mem.add_row(escape(n), _q(used, "bytes"), _q(cap, "bytes"),
                    "yes" if used <= cap else "[bold red]NO[/]")
    return [stages, loads, mem]


def objective_line(ev: Evaluation) -> str:
    """``T = first + (M-1) x bottleneck`` spelled out."""
    return (f"T = {format_quantity(ev.first_micro_batch_s, 'seconds')} (first micro-batch) + "
            f"({ev.num_micro_batches} - 1) x {format_quantity(ev.bottleneck_s, 'seconds')} "
            f"({escape(ev.bottleneck_resource)}) = "
            f"[bold]{format_quantity(ev.objective_s, 'seconds')}[/]   "
            f"b = {ev.micro_batch_size}, M = {ev.num_micro_batches}, B = {ev.batch_size}")
