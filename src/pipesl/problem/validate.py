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
    With several data owners: compute nodes no owner reaches.
    """
    net = problem.network
    reachable: set[str] = set()
    for owner in problem.owners:
        if owner.node not in reachable:
            reachable |= nx.node_connected_component(net.graph, owner.node)
    return [n.id for n in net.compute_nodes if n.id not in reachable]


def validate_problem(problem: Problem) -> Problem:
    """Check the relations between fields of ``problem``; return it unchanged.

    With ``training.sources``, every owner is checked as a single-source problem
    (:meth:`Problem.owner_problem`, errors named ``training.sources[i].<field>``), and owners
    must sit on distinct compute nodes, have distinct names, and keep their labels off the
    other owners' nodes.

    Raises
    ------
    ProblemError
        A training field names an unknown node, the source cannot compute, the label node is
        unreachable, or the micro-batch size is out of range.
    """
    if problem.training.sources:
        return _validate_owners(problem)
    return _validate_single(problem)


_OWNER_FIELD = {"training.source": "node", "training.micro_batch_size": "micro_batch_size",
                "training.labels_at": "labels_at", "training.batch_size": "batch_size"}


def _validate_owners(problem: Problem) -> Problem:
    net = problem.network
    owners = problem.training.sources
    nodes: dict[str, int] = {}
    labels: dict[str, int] = {}
    for i, owner in enumerate(owners):
        field = f"training.sources[{i}]"
        if owner.node not in net.node_index:
            raise ProblemError(f"{field}.node", "is not the id of a node in the network",
                               owner.node)
        if not net.node(owner.node).can_compute:
            raise ProblemError(f"{field}.node", "is not a compute node (flops is 0 or compute "
                               "is false); a data owner runs layer 1", owner.node)
        if owner.node in nodes:
            raise ProblemError(f"{field}.node", f"is a duplicate node (also sources"
                               f"[{nodes[owner.node]}]); one data owner per node", owner.node)
        nodes[owner.node] = i
        if owner.label in labels:
            raise ProblemError(f"{field}.name", f"is a duplicate owner name (also sources"
                               f"[{labels[owner.label]}])", owner.label)
        labels[owner.label] = i
    for i, owner in enumerate(owners):
        at = nodes.get(owner.labels_at or "", i)
        if at != i:
            raise ProblemError(f"training.sources[{i}].labels_at", f"is the node of data owner "
                               f"{at} ({owners[at].label}); an owner's labels never go to "
                               "another owner", owner.labels_at)
        try:
            _validate_single(problem.owner_problem(i))
        except ProblemError as exc:
            name = _OWNER_FIELD.get(exc.field)
            if name is None:
                raise
            raise ProblemError(f"training.sources[{i}].{name}", exc.rule, exc.value) from None
    return problem


def _validate_single(problem: Problem) -> Problem:
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
