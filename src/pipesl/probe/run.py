"""``pipesl probe`` as a library: one rank of a torchrun job measures what a problem needs.

Every host runs one process per node it hosts (like ``pipesl worker``); the ranks join a gloo
group through torchrun's environment, time every link between their nodes
(:mod:`pipesl.runtime.linktiming`, the only part that needs torch; fitted by
:mod:`pipesl.probe.links`) and, with ``devices``, calibrate the model on each compute node
(:func:`pipesl.profiling.calibrate`). Rank 0 returns a :class:`ProbeResult`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipesl.exceptions import ProblemError, RuntimeSetupError
from pipesl.plan import Plan
from pipesl.probe.estimate import LinkEstimate, probed_problem
from pipesl.probe.links import estimate_links
from pipesl.problem.types import Problem

__all__ = ["DEFAULT_SIZES", "ProbeResult", "message_sizes", "probe_nodes", "run_probe"]

logger = logging.getLogger(__name__)

DEFAULT_SIZES = (4096, 16384, 65536, 262144)
"""Payload bytes timed on a link that no plan's activation crosses."""


@dataclass(frozen=True)
class ProbeResult:
    """What rank 0 of a probe learnt."""

    problem: Problem
    """The input problem with the measured values (names kept)."""
    links: tuple[LinkEstimate, ...]
    devices: dict[str, tuple[float, float]] = field(default_factory=dict)
    """``{node: (flops, overhead)}`` from the calibration, when asked for."""
    reps: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what ``pipesl probe --json`` prints)."""
        return {"links": [e.to_dict() for e in self.links], "reps": self.reps,
                "devices": {n: {"flops": f, "overhead": o}
                            for n, (f, o) in self.devices.items()}}


def probe_nodes(problem: Problem, plan: Plan | None, nodes: Sequence[str] | None
                ) -> tuple[str, ...]:
    """The probe's rank order: ``nodes``, else the plan's (as ``pipesl worker``), else every
    node of the network."""
    if plan is not None and not nodes:
        from pipesl.runtime.topology import build_topology

        return build_topology(problem, plan).nodes
    known = [n.id for n in problem.network.nodes]
    if not nodes:
        return tuple(known)
    for n in nodes:
        if n not in known:
            raise ProblemError("nodes", f"must be nodes of the network ({', '.join(known)})", n)
    return tuple(nodes)


def message_sizes(problem: Problem, plan: Plan | None, links: Sequence[tuple[str, str]],
                  sizes: Sequence[int] | None = None) -> dict[frozenset[str], tuple[int, ...]]:
    """Payload bytes to time per link: ``sizes`` if given; else, on a link the plan's
    activations cross, a quarter, half, once and twice the largest one (``out_bytes`` times
    the micro-batch size, as the cost model charges); else :data:`DEFAULT_SIZES`."""
    if sizes:
        if len(set(sizes)) < 2 or min(sizes) < 4:
            raise ProblemError("sizes", "need two or more different sizes of 4 bytes or more",
                               list(sizes))
        return {frozenset(ln): tuple(sorted(set(sizes))) for ln in links}
    largest: dict[frozenset[str], float] = {}
    if plan is not None:
        b = plan.micro_batch_size
        layers = problem.model.layers
        routes = list(plan.routes) + ([plan.label_route] if plan.label_route else [])
        for k, route in enumerate(routes):
            stage = plan.stages[min(k, len(plan.stages) - 1)]
            size = layers[stage.last_layer - 1].out_bytes * b
            for u, v in itertools.pairwise(route):
                key = frozenset((u, v))
                largest[key] = max(largest.get(key, 0.0), size)
    out: dict[frozenset[str], tuple[int, ...]] = {}
    for ln in links:
        key = frozenset(ln)
        s = largest.get(key)
        if s is None:
            out[key] = DEFAULT_SIZES
        else:
            out[key] = tuple(sorted({max(4, int(s * f) // 4 * 4) for f in (0.25, 0.5, 1, 2)}))
    return out


def _rank(nodes: Sequence[str], host_nodes: Sequence[str] | None) -> tuple[int, int]:
    env = os.environ
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE") if v not in env]
    if missing:
        raise RuntimeSetupError(f"pipesl probe runs under torchrun (one process per node); "
                                f"the environment lacks {', '.join(missing)}")
    world = int(env["WORLD_SIZE"])
    if world != len(nodes):
        raise RuntimeSetupError(f"WORLD_SIZE is {world} but {len(nodes)} nodes are probed "
                                f"({', '.join(nodes)}): one process per node")
    if not host_nodes:
        return int(env["RANK"]), world
    local = int(env.get("LOCAL_RANK", "0"))
    if local >= len(host_nodes):
        raise RuntimeSetupError(f"LOCAL_RANK {local} has no entry in --host-nodes "
                                f"{','.join(host_nodes)}")
    if host_nodes[local] not in nodes:
        raise RuntimeSetupError(f"--host-nodes names {host_nodes[local]!r}, which is not "
                                f"probed ({', '.join(nodes)})")
    return nodes.index(host_nodes[local]), world


def _calibrate(problem: Problem, node: str, model: str | None) -> tuple[float, float]:
    from pipesl.models import resolve_model
    from pipesl.profiling import calibrate

    resolved = resolve_model(model or problem.model.name)
    cal = calibrate(resolved.model, resolved.sample, name=resolved.name, node_id=node)
    return cal.flops, cal.overhead


def run_probe(problem: Problem, plan: Plan | None = None, *,
              nodes: Sequence[str] | None = None, host_nodes: Sequence[str] | None = None,
              reps: int = 8, sizes: Sequence[int] | None = None,
              padding: Mapping[frozenset[str], int] | None = None, devices: bool = False,
              model: str | None = None, duplex: str | None = None,
              timeout_s: float = 120.0) -> ProbeResult | None:
    """Run this process as one rank of a probe (see the module docstring).

    Returns the result on rank 0, None elsewhere.
    """
    from pipesl.runtime.linktiming import probe_rank

    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 2:
        raise ProblemError("reps", "must be an integer >= 2", reps)
    order = probe_nodes(problem, plan, nodes)
    links = [(ln.source, ln.target) for ln in problem.network.links
             if ln.source in order and ln.target in order]
    if not links:
        raise ProblemError("nodes", "no link joins two probed nodes", ", ".join(order))
    todo = message_sizes(problem, plan, links, sizes)
    rank, world = _rank(order, host_nodes)
    node = problem.network.node(order[rank])

    def calibrate() -> tuple[float, float] | None:  # every rank joins the gather
        return _calibrate(problem, node.id, model) if node.can_compute else None

    got = probe_rank(order, rank, world, links, todo, reps=reps, padding=padding,
                     timeout_s=timeout_s, calibrate=calibrate if devices else None)
    if got is None:
        return None
    timed, measured = got
    found = estimate_links(links, todo, timed)
    return ProbeResult(probed_problem(problem, found, measured, duplex), tuple(found),
                       measured, reps)
