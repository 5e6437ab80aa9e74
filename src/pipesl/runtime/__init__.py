"""Real pipelined split training across processes and hosts (torch.distributed).

Given a problem and a plan, :func:`train` runs one process per network node of the plan —
compute stages and the relays of every route — passes activations forward and gradients
backward hop by hop along the planned routes, executes the same GPipe/1F1B action lists as
the simulator, and reports measured iteration times beside the simulated and analytic ones.
Locally, emulation makes a few processes on one machine behave like the problem's devices and
links (see :mod:`pipesl.runtime.transport` and :mod:`pipesl.runtime.worker`); ``pipesl worker``
runs one rank of a multi-host job under ``torchrun``. See ``docs/runtime.md``.

Concepts, in the spirit of torch.distributed.pipelining's stage / schedule split:
:mod:`~pipesl.runtime.topology` (ranks, roles, hops; no torch) ->
:mod:`~pipesl.runtime.program` (each rank's per-iteration program of compute, send, receive
and relay actions, lowered from the schedule table; no torch) ->
:mod:`~pipesl.runtime.executor` (runs a program against a
:class:`~pipesl.runtime.stages.Stage`, a link layer and the emulator) over
:mod:`~pipesl.runtime.transport` (one message per transfer, async gloo sends and receives)
with :mod:`~pipesl.runtime.emulator` (every planned duration and pacer; links and devices
switchable) <- :mod:`~pipesl.runtime.worker` (one rank) <- :mod:`~pipesl.runtime.launch`
(processes) -> :mod:`~pipesl.runtime.report` (typed :mod:`~pipesl.runtime.records` in,
reports out). ``import pipesl.runtime`` imports no torch; the names below load on first use.
Reliability: :mod:`~pipesl.runtime.liveness` (what each rank is doing) and
:mod:`~pipesl.runtime.supervise` (the launcher's watch), :mod:`~pipesl.runtime.faults`
(injection, test mode), :mod:`~pipesl.runtime.checkpoint` (per-unit, atomic),
:mod:`~pipesl.runtime.audit` (every tensor that crosses a hop), :mod:`~pipesl.runtime.procfs`.
Adaptation stands above the runtime: :func:`pipesl.adapt.loop.train_adaptive` re-plans on
measured drift or a failed node and moves the job at an iteration boundary through this
package's :mod:`~pipesl.runtime.control` and :mod:`~pipesl.runtime.pool`; its names stay
importable from here (loaded by name on first use) for callers written before the move.
Scripted network changes (:mod:`pipesl.problem.events`) are emulated by
:mod:`~pipesl.runtime.conditions`. See ``docs/adaptation.md``. Several data owners train
through :mod:`pipesl.runtime.owners` (:func:`~pipesl.runtime.owners.train_owners`).
"""

from typing import TYPE_CHECKING, Any

from pipesl.lazy import load_lazy

if TYPE_CHECKING:
    from pipesl.adapt.loop import AdaptConfig, AdaptiveResult, train_adaptive
    from pipesl.runtime.audit import AuditReport
    from pipesl.runtime.config import RunConfig, build_config
    from pipesl.runtime.data import BatchSource, DataSpec, make_batches
    from pipesl.runtime.launch import make_job, run_torchrun_worker, train
    from pipesl.runtime.liveness import WorkerFailure
    from pipesl.runtime.reference import train_reference
    from pipesl.runtime.report import HopStats, IterationReport, StageStats, TrainResult
    from pipesl.runtime.topology import (
        Hop,
        StageRole,
        Topology,
        build_topology,
        micro_batch_sizes,
    )

_WHERE = {
    "AdaptConfig": "pipesl.adapt.loop", "AdaptiveResult": "pipesl.adapt.loop",
    "train_adaptive": "pipesl.adapt.loop",
    "AuditReport": "audit", "RunConfig": "config", "build_config": "config",
    "BatchSource": "data", "DataSpec": "data", "make_batches": "data",
    "make_job": "launch", "run_torchrun_worker": "launch", "train": "launch",
    "WorkerFailure": "liveness", "train_reference": "reference", "HopStats": "report",
    "IterationReport": "report", "StageStats": "report", "TrainResult": "report",
    "Hop": "topology", "StageRole": "topology", "Topology": "topology",
    "build_topology": "topology", "micro_batch_sizes": "topology",
}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (so that ``import pipesl.runtime`` does not
    import torch)."""
    return load_lazy(__name__, _WHERE, globals(), name)


__all__ = [
    "AdaptConfig",
    "AdaptiveResult",
    "AuditReport",
    "BatchSource",
    "DataSpec",
    "Hop",
    "HopStats",
    "IterationReport",
    "RunConfig",
    "StageRole",
    "StageStats",
    "Topology",
    "TrainResult",
    "WorkerFailure",
    "build_config",
    "build_topology",
    "make_batches",
    "make_job",
    "micro_batch_sizes",
    "run_torchrun_worker",
    "train",
    "train_adaptive",
    "train_reference",
]
