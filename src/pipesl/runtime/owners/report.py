"""What a many-owner run measured: per iteration the joint time and each owner's, beside the
simulator's (no torch).

Every record is on the one host's clock (local runs). Owner o's measured time runs from its
source's start of the iteration (or of its turn, sequentially) to the end of its last
backward pass (its first stage, on its own node: the last task of every schedule). The joint
time is, in ``parallel`` mode, from the earliest owner's start to the latest owner's end (the
simulator's makespan: when the last owner's last backward ends); in ``sequential`` mode the
sum of the owners' turns (the simulator's round).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipesl.plan import plan_to_dict
from pipesl.runtime.config import RunConfig
from pipesl.runtime.owners.topology import OwnersTopology
from pipesl.runtime.records import IterationTimes, Loss, Pass, Record

__all__ = ["OwnersIterationReport", "OwnersTrainResult", "assemble_owners_iteration"]


@dataclass(frozen=True)
class OwnersIterationReport:
    """One iteration (a round, sequentially): losses and times, joint and per owner."""

    iteration: int
    losses: tuple[float, ...]
    """Owner o's mean loss over its mini-batch."""
    measured_s: float
    """Joint: parallel, first start to last owner's end; sequential, the sum of the turns."""
    simulated_s: float
    owner_measured_s: tuple[float, ...]
    """Parallel: owner o's start to the end of its last backward; sequential: its turn."""
    owner_simulated_s: tuple[float, ...]
    wall_s: float
    """First start to the last optimiser step's end (barriers between turns included)."""

    @property
    def error(self) -> float:
        """measured / simulated - 1 (joint)."""
        return self.measured_s / self.simulated_s - 1.0 if self.simulated_s > 0 else 0.0

    @property
    def owner_errors(self) -> tuple[float, ...]:
        """measured / simulated - 1 per owner."""
        return tuple(m / s - 1.0 if s > 0 else 0.0
                     for m, s in zip(self.owner_measured_s, self.owner_simulated_s,
                                     strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"iteration": self.iteration, "losses": list(self.losses),
                "measured_s": self.measured_s, "simulated_s": self.simulated_s,
                "error": self.error, "owner_measured_s": list(self.owner_measured_s),
                "owner_simulated_s": list(self.owner_simulated_s),
                "owner_errors": list(self.owner_errors), "wall_s": self.wall_s}


def assemble_owners_iteration(otopo: OwnersTopology, iteration: int,
                              records: Sequence[Record], simulated_s: float,
                              owner_simulated_s: Sequence[float]) -> OwnersIterationReport:
    """Every rank's records of one iteration in, its report out."""
    n = otopo.num_owners
    starts: dict[int, float] = {}
    stepped: list[float] = []
    ends = [float("-inf")] * n
    losses = [0.0] * n
    for r in records:
        if isinstance(r, IterationTimes):
            starts[r.owner] = r.start
            stepped.append(r.stepped)
        elif isinstance(r, Pass) and r.stage == 0 and r.kind == "B":
            ends[r.owner] = max(ends[r.owner], r.end)
        elif isinstance(r, Loss):
            losses[r.owner] += r.value
    missing = [o for o in range(n) if o not in starts or ends[o] == float("-inf")]
    if missing:
        raise ValueError(f"iteration {iteration}: no times of owner(s) {missing}")
    owner_measured = tuple(ends[o] - starts[o] for o in range(n))
    parallel = otopo.mode == "parallel"
    joint = max(ends) - min(starts.values()) if parallel else sum(owner_measured)
    return OwnersIterationReport(iteration, tuple(losses), joint, simulated_s, owner_measured,
                                 tuple(owner_simulated_s),
                                 max(stepped) - min(starts.values()))


@dataclass(frozen=True, eq=False)
class OwnersTrainResult:
    """A many-owner run: its processes, every iteration, the predictions."""

    problem: str
    mode: str
    replicas: str
    schedule: str
    config: RunConfig
    owners: tuple[str, ...]
    """Owner names."""
    batch_sizes: tuple[int, ...]
    """Owner o's mini-batch size B."""
    plans: tuple[Any, ...]
    nodes: tuple[tuple[str, int, tuple[str, ...]], ...]
    """(node, rank, roles)."""
    iterations: tuple[OwnersIterationReport, ...]
    simulated_s: float
    owner_simulated_s: tuple[float, ...]
    startup_s: float
    state: dict[int, dict[str, Any]] | None = field(default=None, repr=False)
    """Owner o's trained parameters (its private layers and the server stages it used),
    with ``return_state``."""
    audit: Any = None
    """The per-owner transport audit (:class:`~pipesl.runtime.owners.audit.OwnersAudit`)."""

    def median_measured_s(self, skip_first: bool = True) -> float:
        """Median joint measured time (the first iteration skipped when there are more)."""
        its = self.iterations[1:] if skip_first and len(self.iterations) > 1 else (
            self.iterations)
        return statistics.median(r.measured_s for r in its)

    def median_owner_measured_s(self, skip_first: bool = True) -> tuple[float, ...]:
        """Median measured time of each owner."""
        its = self.iterations[1:] if skip_first and len(self.iterations) > 1 else (
            self.iterations)
        return tuple(statistics.median(r.owner_measured_s[o] for r in its)
                     for o in range(len(self.owners)))

    def to_dict(self) -> dict[str, Any]:
        """What ``pipesl train MULTI --json`` prints."""
        cfg = self.config
        return {
            "problem": self.problem, "mode": self.mode, "replicas": self.replicas,
            "schedule": self.schedule, "owners": list(self.owners),
            "batch_sizes": list(self.batch_sizes),
            "plan": {"owners": [plan_to_dict(p) for p in self.plans], "mode": self.mode,
                     "replicas": self.replicas},
            "nodes": [{"node": n, "rank": r, "roles": list(roles)}
                      for n, r, roles in self.nodes],
            "emulate": cfg.emulation.enabled, "time_scale": cfg.emulation.time_scale,
            "virtual_clock": cfg.emulation.virtual_clock, "steps": cfg.training.steps,
            "data": cfg.job.data,
            "simulated_s": self.simulated_s,
            "owner_simulated_s": list(self.owner_simulated_s),
            "median_measured_s": self.median_measured_s() if self.iterations else None,
            "median_owner_measured_s": (list(self.median_owner_measured_s())
                                        if self.iterations else None),
            "startup_s": self.startup_s,
            "iterations": [r.to_dict() for r in self.iterations],
            **({"audit": self.audit.to_dict()} if self.audit is not None else {}),
        }
