"""Cross-field checks of a whole problem: ids that must exist, reachability, a model that fits.

Field-level checks (types, signs, units) happen while parsing, in :mod:`pipesl.problem.parse`.
Validation needs no cost model: whether the model fits in memory (a cost rule) is checked by
the planners and the command line (:func:`pipesl.cost.fits.check_source_alone`).
"""

from __future__ import annotations

import networkx as nx

from pipesl.exceptions import ProblemError
from pipesl.problem.types import Problem

__all__ = ["unreachable_servers", "validate_problem"]


def unreachable_servers(problem: Problem) -> list[str]:
    """Compute nodes with no path from the source: they can never hold a stage.

    Not an error (the source may hold the whole model, and a network file may describe more
    than one site), but worth saying: a plan then keeps everything on what the source reaches.
    """
    net = problem.network
    reachable = nx.node_connected_component(net.graph, problem.training.source)
    return [n.id for n in net.compute_nodes if n.id not in reachable]


def validate_problem(problem: Problem) -> Problem:
    """Check the relations between fields of ``problem``; return it unchanged.

    Raises
    ------
    ProblemError
        A training field names an unknown node, the source cannot compute, the label node is
        unreachable, or the micro-batch size is out of range.
    """
    net, tr = problem.network, problem.training
    if tr.source not in net.node_index:
        raise ProblemError("training.source", "is not the id of a node in the network", tr.source)
    src = net.node(tr.source)
    if not src.can_compute:
        raise ProblemError("training.source", "cannot compute (flops is 0 or compute is false);"
                           " the data owner must run layer 1", tr.source)
    if tr.micro_batch_size is not None and not 1 <= tr.micro_batch_size <= tr.batch_size:
        raise ProblemError("training.micro_batch_size",
                           f"must be between 1 and batch_size ({tr.batch_size})",
                           tr.micro_batch_size)
    reachable = nx.node_connected_component(net.graph, tr.source)
    if tr.labels_at is not None:
        if tr.labels_at not in net.node_index:
            raise ProblemError("training.labels_at", "is not the id of a node in the network",
                               tr.labels_at)
        if tr.labels_at not in reachable:
            raise ProblemError("training.labels_at", f"is not reachable from the source "
                               f"{tr.source!r}; the last layer's output cannot get there",
                               tr.labels_at)
    return problem
