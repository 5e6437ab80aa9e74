"""Moving model state between nodes: how long bulk transfers take on the network.

Used when a running job switches plans (:mod:`pipesl.adapt`). The per-hop formula is SPEC
section 3's one-way transfer ``x = 8 n / bandwidth + latency`` with n the bytes moved;
relays store and forward, as the runtime's relay processes do, so a route costs the sum over
its hops. Transfers run concurrently; a half-duplex link is one resource for both directions,
a full-duplex link one per direction (as in SPEC section 3), and the estimate of the whole
migration is the larger of the slowest single transfer and the busiest resource's total work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import networkx as nx

from pipesl.cost.model import Resource
from pipesl.problem.types import Problem

__all__ = ["BulkTransfer", "bulk_route", "bulk_transfer_seconds", "concurrent_transfer_seconds",
           "state_bytes"]


def state_bytes(problem: Problem, layers: Iterable[int], factor: float | None = None) -> float:
    """Bytes of model state that travel with the 1-based ``layers`` when their owner changes.

    ``factor`` bytes per parameter byte: weights and optimiser state, not gradients (they are
    rebuilt every iteration); default ``max(1, state_factor - 1)``.
    """
    f = max(1.0, problem.training.state_factor - 1.0) if factor is None else factor
    return f * sum(problem.model.layers[i - 1].param_bytes for i in layers)


@dataclass(frozen=True)
class BulkTransfer:
    """``nbytes`` of model state sent from ``source`` to ``target`` along ``route``."""

    source: str
    target: str
    nbytes: float
    route: tuple[str, ...]


def _hop_seconds(problem: Problem, u: str, v: str, nbytes: float) -> float:
    link = problem.network.link_between(u, v)
    if link is None:
        raise KeyError(f"no link between {u!r} and {v!r}")
    return 8.0 * nbytes / link.bandwidth + link.latency


def bulk_transfer_seconds(problem: Problem, route: Sequence[str], nbytes: float) -> float:
    """Seconds to send ``nbytes`` alone along ``route`` (store and forward)."""
    return sum(_hop_seconds(problem, u, v, nbytes) for u, v in pairwise(route))


def bulk_route(problem: Problem, source: str, target: str, nbytes: float) -> tuple[str, ...]:
    """The route of least :func:`bulk_transfer_seconds` for ``nbytes`` from source to target.

    Raises
    ------
    networkx.NetworkXNoPath
        When the two nodes are not connected.
    """
    if source == target:
        return (source,)

    def weight(u: str, v: str, data: dict[str, float]) -> float:
        return 8.0 * nbytes / data["bandwidth"] + data["latency"]

    return tuple(nx.dijkstra_path(problem.network.graph, source, target, weight=weight))


def concurrent_transfer_seconds(problem: Problem, transfers: Iterable[BulkTransfer]) -> float:
    """Estimated makespan of transfers that all start at once and share links.

    ``max(slowest transfer alone, busiest resource's total transmission time)``: a lower
    bound on any schedule of the transfers, reached when one transfer or one resource
    dominates.
    """
    busy: dict[Resource, float] = {}
    alone = 0.0
    for tr in transfers:
        alone = max(alone, bulk_transfer_seconds(problem, tr.route, tr.nbytes))
        for u, v in pairwise(tr.route):
            link = problem.network.link_between(u, v)
            assert link is not None
            r = (Resource("link", u, v, True) if link.duplex == "full"
                 else Resource("link", link.source, link.target))
            busy[r] = busy.get(r, 0.0) + _hop_seconds(problem, u, v, tr.nbytes)
    return max([alone, *busy.values()])
