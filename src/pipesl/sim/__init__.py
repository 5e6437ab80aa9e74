"""Discrete-event simulation of one pipelined training iteration (SPEC section 5).

``simulate(problem, plan, "1f1b")`` runs the schedule's per-stage action lists on the plan's
compute nodes and links — non-preemptive resources, store-and-forward relays, FIFO links — and
returns a :class:`SimResult`: makespan beside the analytic T, utilisation, bubbles, peak
activations and a trace (Chrome trace JSON via ``result.trace.to_chrome()``).

Layers: :mod:`~pipesl.sim.engine` (event heap, servers) <- :mod:`~pipesl.sim.pipeline`
(steps, tasks, dependencies) <- :mod:`~pipesl.sim.simulate` (problem + plan + cost model);
several data owners: :mod:`~pipesl.sim.shared` (pipelines sharing resources) <-
:mod:`~pipesl.sim.owners` (``simulate_owners``).
No torch, no matplotlib.
"""

from pipesl.cost.steps import plan_steps
from pipesl.sim.engine import EventQueue, FifoServer, MergedServer, OrderedServer
from pipesl.sim.owners import OwnerRow, OwnersNodeMemory, OwnersSimResult, simulate_owners
from pipesl.sim.pipeline import Step, run_pipeline
from pipesl.sim.shared import OwnerPipeline, run_pipelines
from pipesl.sim.simulate import LastMicroBatch, NodeMemory, SimResult, simulate
from pipesl.sim.trace import TaskRecord, Trace

__all__ = [
    "EventQueue",
    "FifoServer",
    "LastMicroBatch",
    "MergedServer",
    "NodeMemory",
    "OrderedServer",
    "OwnerPipeline",
    "OwnerRow",
    "OwnersNodeMemory",
    "OwnersSimResult",
    "SimResult",
    "Step",
    "TaskRecord",
    "Trace",
    "plan_steps",
    "run_pipeline",
    "run_pipelines",
    "simulate",
    "simulate_owners",
]
