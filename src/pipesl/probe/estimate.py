"""Link estimates from timed transfers, and a problem with the measured values (no torch).

A transfer of ``s`` payload bytes over a direction is timed ``reps`` times at several sizes,
alone and back to back (:mod:`pipesl.probe.links`). The cost model charges
``x = 8 * s / bandwidth + latency`` (SPEC section 3), so the estimate is the least-squares
line through the per-size medians:
``bandwidth = 8 / slope`` (payload bits per second: goodput, after every header) and
``latency = intercept`` (the fixed cost of one transfer: the transport's header message, gloo's
per-message work, the TCP/IP stack, any latency padding on the wire, minus what a token
bucket's burst saves). The spread is that of the same fit over each repetition alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.problem.types import Problem

__all__ = ["DirectionEstimate", "LinkEstimate", "fit_direction", "probed_problem"]


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        raise ProblemError("sizes", "need at least two different message sizes", list(xs))
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


@dataclass(frozen=True)
class DirectionEstimate:
    """One direction of a link, ``sender -> receiver``."""

    sender: str
    receiver: str
    sizes: tuple[int, ...]
    """Payload bytes of the timed transfers."""
    seconds: tuple[tuple[float, ...], ...]
    """Per size, the one-way time of every repetition."""
    bandwidth_bps: float
    """Goodput: 8 / slope of the fit through the per-size medians."""
    latency_s: float
    """Intercept of that fit (the fixed cost of one transfer; may be negative with a burst)."""
    bandwidth_range: tuple[float, float]
    """Lowest and highest bandwidth of the per-repetition fits."""
    latency_range: tuple[float, float]

    @property
    def spread(self) -> float:
        """(highest - lowest) / estimate of the per-repetition bandwidths."""
        lo, hi = self.bandwidth_range
        return (hi - lo) / self.bandwidth_bps

    def predict(self, size: int) -> float:
        """Fitted seconds of one transfer of ``size`` bytes."""
        return 8.0 * size / self.bandwidth_bps + self.latency_s

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"sender": self.sender, "receiver": self.receiver, "sizes": list(self.sizes),
                "seconds": [list(s) for s in self.seconds],
                "bandwidth_bps": self.bandwidth_bps, "latency_s": self.latency_s,
                "bandwidth_range": list(self.bandwidth_range),
                "latency_range": list(self.latency_range), "spread": self.spread}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DirectionEstimate:
        """Inverse of :meth:`to_dict`."""
        return cls(doc["sender"], doc["receiver"], tuple(doc["sizes"]),
                   tuple(tuple(s) for s in doc["seconds"]), doc["bandwidth_bps"],
                   doc["latency_s"], tuple(doc["bandwidth_range"]),
                   tuple(doc["latency_range"]))


def fit_direction(sender: str, receiver: str, sizes: Sequence[int],
                  seconds: Sequence[Sequence[float]]) -> DirectionEstimate:
    """Fit ``t = 8 s / bandwidth + latency`` (see the module docstring).

    Examples
    --------
    >>> est = fit_direction("a", "b", [1000, 3000], [[0.0018, 0.0018], [0.0034, 0.0034]])
    >>> round(est.bandwidth_bps), round(est.latency_s * 1e3, 3)
    (10000000, 1.0)
    """
    if len(sizes) != len(seconds) or not all(seconds):
        raise ProblemError("seconds", "need repetitions for every size", len(seconds))
    bits = [8.0 * s for s in sizes]
    medians = [statistics.median(ts) for ts in seconds]
    slope, intercept = _line(bits, medians)
    if slope <= 0:
        raise ProblemError("seconds", f"{sender} -> {receiver}: transfer times do not grow "
                           "with the message size (no bandwidth to fit)", medians)
    reps = min(len(ts) for ts in seconds)
    bws, lats = [], []
    for r in range(reps):
        s, c = _line(bits, [ts[r] for ts in seconds])
        if s > 0:
            bws.append(1.0 / s)
            lats.append(c)
    bw = 1.0 / slope
    return DirectionEstimate(sender, receiver, tuple(sizes), tuple(tuple(t) for t in seconds),
                             bw, intercept, (min(bws, default=bw), max(bws, default=bw)),
                             (min(lats, default=intercept), max(lats, default=intercept)))


@dataclass(frozen=True)
class LinkEstimate:
    """Both directions of one link and the values a problem file gets."""

    source: str
    target: str
    forward: DirectionEstimate
    """source -> target, transfers back to back (a busy link: what the problem gets)."""
    backward: DirectionEstimate
    """target -> source, back to back."""
    forward_alone: DirectionEstimate | None = None
    """source -> target, one transfer over an idle link."""
    backward_alone: DirectionEstimate | None = None

    @property
    def bandwidth_bps(self) -> float:
        """The slower direction's goodput (a problem link has one bandwidth)."""
        return min(self.forward.bandwidth_bps, self.backward.bandwidth_bps)

    @property
    def latency_s(self) -> float:
        """The larger intercept, at least 0."""
        return max(self.forward.latency_s, self.backward.latency_s, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"source": self.source, "target": self.target,
                "bandwidth_bps": self.bandwidth_bps, "latency_s": self.latency_s,
                "forward": self.forward.to_dict(), "backward": self.backward.to_dict(),
                "forward_alone": None if self.forward_alone is None
                else self.forward_alone.to_dict(),
                "backward_alone": None if self.backward_alone is None
                else self.backward_alone.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LinkEstimate:
        """Inverse of :meth:`to_dict`."""
        def opt(key: str) -> DirectionEstimate | None:
            return None if doc.get(key) is None else DirectionEstimate.from_dict(doc[key])

        return cls(doc["source"], doc["target"], DirectionEstimate.from_dict(doc["forward"]),
                   DirectionEstimate.from_dict(doc["backward"]), opt("forward_alone"),
                   opt("backward_alone"))


def probed_problem(problem: Problem, links: Sequence[LinkEstimate],
                   devices: Mapping[str, tuple[float, float]] | None = None,
                   duplex: str | None = None) -> Problem:
    """``problem`` with the measured links (and devices: ``{node: (flops, overhead)}``).

    Every name, every other field and every link not measured stay as they are; ``duplex``
    (``full`` or ``half``) overrides the measured links' duplex when given.
    """
    by_ends = {frozenset((e.source, e.target)): e for e in links}
    new_links = []
    for link in problem.network.links:
        est = by_ends.get(link.ends)
        if est is None:
            new_links.append(link)
            continue
        new_links.append(replace(link, bandwidth=est.bandwidth_bps, latency=est.latency_s,
                                 duplex=duplex or link.duplex))  # type: ignore[arg-type]
    nodes = []
    for node in problem.network.nodes:
        if devices and node.id in devices:
            flops, overhead = devices[node.id]
            nodes.append(replace(node, flops=flops, overhead=overhead))
        else:
            nodes.append(node)
    network = replace(problem.network, nodes=tuple(nodes), links=tuple(new_links))
    return replace(problem, network=network)
