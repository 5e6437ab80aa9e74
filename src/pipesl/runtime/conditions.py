"""The emulated truth: how long passes and transfers really take while the network changes.

Without a script, emulation pads every pass and paces every transfer to the plan's durations
(:mod:`pipesl.cost` on the problem the job was planned for). With a
:class:`~pipesl.problem.events.NetworkScript`, :class:`Conditions` gives the durations on the
network *as it is* at each iteration: the nominal problem (``truth``) with the script's active
factors applied, through the same cost model (:func:`pipesl.sim.plan_steps`), times an
optional seeded jitter. The job's own problem — what the planner believes, possibly updated
from measurements — plays no part in it: a bandwidth drop reaches the planner only through
the measured transfer times.

Departures are played by the fault machinery (:mod:`pipesl.runtime.faults`):
:meth:`Conditions.departure_fault` is a ``kill`` at the node's first activity of the
iteration it leaves in (or of the run's first iteration, when it left before).

Pure Python (no torch): every rank builds the same durations.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from pipesl.cost import plan_stages
from pipesl.plan import Plan
from pipesl.problem.events import NetworkScript
from pipesl.problem.types import Problem
from pipesl.sim import Step, plan_steps

if TYPE_CHECKING:
    from pipesl.runtime.faults import FaultSpec
    from pipesl.runtime.topology import Topology

__all__ = ["Conditions"]


def _uniform(*key: object) -> float:
    """A deterministic uniform number in [-1, 1) from ``key`` (same in every process)."""
    h = zlib.crc32(":".join(map(str, key)).encode())
    return h / 2.0**31 - 1.0


class Conditions:
    """Durations of a plan's passes and transfers on the scripted network.

    Parameters
    ----------
    truth : Problem
        The nominal network (the script's factors are relative to it); it must hold every
        node and link of ``plan``.
    plan : Plan
    script : NetworkScript
    seed : int
        Seeds the jitter.
    """

    def __init__(self, truth: Problem, plan: Plan, script: NetworkScript, seed: int = 0
                 ) -> None:
        self.truth, self.plan, self.script, self.seed = truth, plan, script, seed
        self._steps: dict[tuple[object, ...], tuple[Step, ...]] = {}
        self._owners: list[tuple[str, tuple[str, str] | None]] = [
            (st.node or "", None if st.hop is None else (min(st.hop), max(st.hop)))
            for st in plan_stages(truth, plan)]

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_steps"] = {}
        return state

    def steps_at(self, iteration: int) -> tuple[Step, ...]:
        """The plan's pipeline steps (Affine durations) on the network at ``iteration``."""
        links, nodes = self.script.state_at(iteration)
        key = (tuple(sorted((k, s.bandwidth_factor, s.latency_factor)
                            for k, s in links.items())),
               tuple(sorted((k, s.flops_factor) for k, s in nodes.items())))
        steps = self._steps.get(key)
        if steps is None:
            changed = self.script.problem_at(self.truth, iteration, drop_departed=False)
            steps = self._steps[key] = plan_steps(changed, self.plan)
        return steps

    def seconds(self, step: int, kind: str, samples: int, iteration: int,
                micro_batch: int) -> float:
        """Duration of pass or transfer ``kind`` (``F``/``B``) of ``step`` for a micro-batch
        of ``samples`` samples in ``iteration`` (unscaled)."""
        st = self.steps_at(iteration)[step]
        base = (st.forward if kind == "F" else st.backward)(samples)
        jitter = self._jitter(step, iteration)
        if jitter:
            base *= 1.0 + jitter * _uniform(self.seed, iteration, step, kind, micro_batch)
        return base

    def _jitter(self, step: int, iteration: int) -> float:
        links, nodes = self.script.state_at(iteration)
        node, link = self._owners[step]
        if link is None:
            state = nodes.get(node)
            return state.jitter if state is not None else 0.0
        lstate = links.get(link)
        return lstate.jitter if lstate is not None else 0.0

    def departure_fault(self, node: str, topology: Topology, start_iteration: int
                        ) -> FaultSpec | None:
        """The ``kill`` that plays ``node``'s departure in a run from ``start_iteration``
        (None when it does not leave)."""
        from pipesl.runtime.faults import FaultSpec

        leaves = self.script.departure(node)
        if leaves is None:
            return None
        stage = topology.stage_of(node)
        if stage is not None:
            phase = "F"
        elif topology.has_label_route and node == topology.loss_node:
            phase = "L"
        else:
            phase = "relay"
        return FaultSpec("kill", node, max(leaves, start_iteration), phase)
