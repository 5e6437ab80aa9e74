"""Training with many data owners (issue 18): one process per node of the union of every
owner's plan, each node's program merging the owners' per-rank actions (no torch here).

Concepts, as for one owner: :mod:`~pipesl.runtime.owners.topology` (every owner's
:class:`~pipesl.runtime.topology.Topology`, the union's ranks, who paces each shared link,
each node's compute order; no torch) -> :mod:`~pipesl.runtime.owners.program` (each node's
program, the owners' actions merged and tagged by owner; no torch) ->
:mod:`~pipesl.runtime.owners.executor` (runs it: one compute lane per node for every owner's
stage there) <- :mod:`~pipesl.runtime.owners.worker` (one rank) <-
:mod:`~pipesl.runtime.owners.launch` (:func:`train_owners`) ->
:mod:`~pipesl.runtime.owners.report` (measured vs simulated, joint and per owner). The
single-process yardstick is :mod:`~pipesl.runtime.owners.reference`, the per-owner privacy
audit :mod:`~pipesl.runtime.owners.audit`. See ``docs/runtime.md`` ("Many data owners").
"""

from typing import TYPE_CHECKING, Any

from pipesl.lazy import load_lazy

if TYPE_CHECKING:
    from pipesl.runtime.owners.launch import make_owners_job, train_owners
    from pipesl.runtime.owners.reference import train_owners_reference
    from pipesl.runtime.owners.report import OwnersIterationReport, OwnersTrainResult
    from pipesl.runtime.owners.topology import OwnersTopology, build_owners_topology

_WHERE = {
    "make_owners_job": "launch", "train_owners": "launch",
    "train_owners_reference": "reference",
    "OwnersIterationReport": "report", "OwnersTrainResult": "report",
    "OwnersTopology": "topology", "build_owners_topology": "topology",
}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (no torch at import)."""
    return load_lazy(__name__, _WHERE, globals(), name)


__all__ = [
    "OwnersIterationReport",
    "OwnersTopology",
    "OwnersTrainResult",
    "build_owners_topology",
    "make_owners_job",
    "train_owners",
    "train_owners_reference",
]
