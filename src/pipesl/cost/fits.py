"""Whether a problem can hold its model at all when the source is alone (a memory rule).

Validation (:func:`pipesl.problem.validate_problem`) checks the relations between input
fields and needs no cost model; whether the model *fits* is a question for the cost model's
memory rule, asked by the planners (:func:`pipesl.solvers.solve`) and the command line
before anything else.
"""

from __future__ import annotations

import networkx as nx

from pipesl.cost.model import min_stage_memory
from pipesl.exceptions import InfeasibleError
from pipesl.problem.types import Problem
from pipesl.units import format_quantity

__all__ = ["check_source_alone"]


def check_source_alone(problem: Problem) -> None:
    """Refuse a problem whose source reaches no other compute node and cannot hold the model.

    Raises
    ------
    InfeasibleError
        The source is the only compute node it reaches and the whole model needs more
        memory than it has at the smallest micro-batch size; the message says by how much
        (with ``training.sources``, for each data owner's problem, named
        ``training.sources[i]``).
    """
    if problem.training.sources:  # several data owners: each one's own problem
        for i in range(len(problem.training.sources)):
            try:
                check_source_alone(problem.owner_problem(i))
            except InfeasibleError as exc:
                raise InfeasibleError(f"training.sources[{i}]: {exc}") from None
        return
    net, tr = problem.network, problem.training
    if tr.source not in net.node_index:
        return  # validation names that error
    reachable = nx.node_connected_component(net.graph, tr.source)
    if any(n.id != tr.source and n.id in reachable for n in net.compute_nodes):
        return
    src = net.node(tr.source)
    need = min_stage_memory(problem, 1, problem.model.num_layers, stages_after=0)
    if need > src.memory:
        raise InfeasibleError(
            f"memory: the source {src.id!r} reaches no other compute node and the whole model "
            f"needs {format_quantity(need, 'bytes', 4)} at the smallest micro-batch size "
            f"({tr.micro_batch_size or 1}), but it has "
            f"{format_quantity(src.memory, 'bytes', 4)} (short by "
            f"{format_quantity(need - src.memory, 'bytes', 4)})")
