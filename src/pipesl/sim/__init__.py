"""Discrete-event simulation of one pipelined training iteration (SPEC section 5).

``simulate(problem, plan, "1f1b")`` runs the schedule's per-stage action lists on the plan's
compute nodes and links — non-preemptive resources, store-and-forward relays, FIFO links — and
returns a :class:`SimResult`: makespan beside the analytic T, utilisation, bubbles, peak
activations and a trace (Chrome trace JSON via ``result.trace.to_chrome()``).

Layers: :mod:`~pipesl.sim.engine` (event heap, servers) <- :mod:`~pipesl.sim.pipeline`
(steps, tasks, dependencies) <- :mod:`~pipesl.sim.simulate` (problem + plan + cost model).
No torch, no matplotlib.
"""

from pipesl.cost.steps import plan_steps
from pipesl.sim.engine import EventQueue, FifoServer, OrderedServer
from pipesl.sim.pipeline import Step, run_pipeline
from pipesl.sim.simulate import LastMicroBatch, NodeMemory, SimResult, simulate
from pipesl.sim.trace import TaskRecord, Trace

__all__ = [
    "EventQueue",
    "FifoServer",
    "LastMicroBatch",
    "NodeMemory",
    "OrderedServer",
    "SimResult",
    "Step",
    "TaskRecord",
    "Trace",
    "plan_steps",
    "run_pipeline",
    "simulate",
]
