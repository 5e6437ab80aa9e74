"""Explain why a problem has no valid plan: the binding constraint and by how much."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from pipesl.cost import CostTables
from pipesl.problem.types import Problem

__all__ = ["diagnose_infeasible"]


def diagnose_infeasible(problem: Problem, sizes: Sequence[int]) -> str:
    """A one-line reason why no plan fits, for the smallest allowed micro-batch size.

    Checks, in order: the source's memory for layer 1; every layer against the largest
    reachable compute node; the whole model against the reachable nodes' total memory;
    otherwise the routing constraint.
    """
    tables = CostTables.from_problem(problem)
    net, tr = problem.network, problem.training
    reach = nx.node_connected_component(net.graph, tr.source)
    nodes = [n for n in net.compute_nodes if n.id in reach]
    b = min(sizes)
    gib = 2.0**30

    def need(first: int, last: int) -> float:
        return float(tables.state_factor * (tables.params[last] - tables.params[first - 1])
                     + float(tables.window(b, 1)) * (tables.acts[last] - tables.acts[first - 1]))

    src = net.node(tr.source)
    first = need(1, 1)
    if first > src.memory:
        return (f"memory: the source {src.id!r} must run layer 1 "
                f"({problem.model.layers[0].name}), which needs {first / gib:.3g} GiB at "
                f"micro-batch size {b}, but it has {src.memory / gib:.3g} GiB")
    largest = max(nodes, key=lambda n: n.memory)
    for l, layer in enumerate(problem.model.layers, 1):
        if need(l, l) > largest.memory:
            return (f"memory: layer {l} ({layer.name}) alone needs {need(l, l) / gib:.3g} GiB "
                    f"at micro-batch size {b}; the largest compute node reachable from the "
                    f"source, {largest.id!r}, has {largest.memory / gib:.3g} GiB")
    total = need(1, problem.model.num_layers)
    capacity = float(np.sum([n.memory for n in nodes]))
    if total > capacity:
        return (f"memory: the model needs at least {total / gib:.3g} GiB in all at micro-batch "
                f"size {b}, but the {len(nodes)} compute nodes reachable from the source have "
                f"{capacity / gib:.3g} GiB together")
    if tr.labels_at is not None and tr.routing == "shortest":
        return ("no valid plan: no split of the model fits in memory on nodes joined by "
                "min-hop routes ending at the label node (training.routing: shortest)")
    return ("memory: no split of the model into contiguous stages on distinct nodes fits in "
            f"their memory at micro-batch size {b} (each layer fits somewhere, but no chain of "
            "nodes holds them all)")
