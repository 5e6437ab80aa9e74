"""Measured against planned: drift detection, and the problem updated with what was measured.

A running job reports, per iteration, how long every pass of every compute stage and every
transfer over every hop took. :class:`DriftMonitor` compares each with the plan's duration
from :mod:`pipesl.cost` (the same Affine forms the planner uses), per *item* — a stage's
forward or backward pass, a hop's activation or gradient — and declares **drift** when, over
the last ``window`` iterations, the median of measured / planned of some item is off by more
than ``threshold`` (0.25: 25 % slower or faster). Medians over a window of iterations and all
their micro-batches ignore jitter and a single slow iteration; the first iteration of a run
(warm-up) can be skipped.

:meth:`DriftMonitor.estimates` turns the window's measurements into effective figures:

* a link's bandwidth from each transfer's ``x``: ``8 * n * out_bytes / (x - latency)`` (the
  SPEC's ``x = 8 n a / bandwidth + latency`` solved for the bandwidth, the latency kept);
* a node's FLOP/s from each pass: ``n * flops / (t - overhead)``.

Both inverses are :func:`pipesl.cost.rate_from_seconds`, beside the forward formulas.

Medians again; a link used by several hops pools their transfers. :func:`calibrate` writes
the estimates of the drifted resources into the problem, which is then re-planned
(:func:`pipesl.adapt.replan`).

Pure Python: the runtime converts its reports into :class:`Sample` tuples.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from pipesl.cost import Resource, plan_stages, rate_from_seconds, stage_phases, transfer_bits
from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.problem.validate import validate_problem

__all__ = ["Drift", "DriftMonitor", "Estimates", "Sample", "calibrate"]


class Sample(NamedTuple):
    """One measured pass or transfer."""

    step: int
    """Index among the plan's pipeline steps (:func:`pipesl.cost.plan_stages` order)."""
    kind: str
    """``F`` (forward pass, activation) or ``B`` (backward pass, gradient)."""
    samples: int
    """Samples in the micro-batch."""
    seconds: float
    """Measured duration (the device or the link busy on it)."""


@dataclass(frozen=True)
class _Item:
    step: int
    kind: str
    name: str
    """``pi2[2-5] F``, ``mcu>mesh1 (L1) F``."""
    resource: str
    """``node:pi2`` or ``link:mcu-mesh1`` (the link, whatever the direction)."""
    per_sample: float
    """Planned seconds per sample (alpha of the Affine)."""
    fixed: float
    """Planned seconds per pass (beta: the overhead or the latency)."""
    work: float
    """Per sample: FLOPs of the pass, or bits of the transfer."""
    link: tuple[str, str] | None = None
    """The link's ends as in the problem (None for a pass): node ids may contain ``-``, so
    the resource name cannot be split back into them."""
    node: str | None = None
    """The node of a pass (None for a transfer)."""

    def planned(self, samples: int) -> float:
        return self.per_sample * samples + self.fixed


@dataclass(frozen=True)
class Drift:
    """The items found off their plan, each with its median ratio measured / planned."""

    iteration: int
    items: tuple[tuple[str, float], ...]
    """(item name, median measured / planned), worst first."""
    resources: tuple[str, ...]
    """The resources those items occupy (``node:x``, ``link:u-v``)."""

    def describe(self) -> str:
        """``mcu>mesh1 (L1) F x3.71, ...``."""
        return ", ".join(f"{name} x{ratio:.2f}" for name, ratio in self.items)


@dataclass(frozen=True)
class Estimates:
    """Effective figures measured over the window."""

    bandwidth_bps: dict[tuple[str, str], float] = field(default_factory=dict)
    """Link (ends as in the problem) -> bits per second."""
    flops: dict[str, float] = field(default_factory=dict)
    """Node -> FLOP/s."""


class DriftMonitor:
    """Compare a running plan's measured durations with its planned ones.

    Parameters
    ----------
    problem : Problem
        What the planner believes (the durations a drift is measured against).
    plan : Plan
    threshold : float
        Relative deviation of an item's median that counts as drift.
    window : int
        Iterations whose measurements are pooled.
    time_scale : float
        The emulation's time scale (measured durations are divided by it).
    """

    def __init__(self, problem: Problem, plan: Plan, *, threshold: float = 0.25,
                 window: int = 3, time_scale: float = 1.0) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.problem, self.plan = problem, plan
        self.threshold, self.window, self.time_scale = threshold, window, time_scale
        self._history: deque[tuple[int, list[Sample]]] = deque(maxlen=window)
        items: dict[tuple[int, str], _Item] = {}
        net, model = problem.network, problem.model
        for step, (st, ph) in enumerate(zip(plan_stages(problem, plan),
                                            stage_phases(problem, plan), strict=True)):
            for kind, affine in (("F", ph.forward), ("B", ph.backward)):
                if st.kind == "compute":
                    assert st.node is not None
                    s = plan.stages[st.stage_index]
                    layers = model.layers[s.first_layer - 1:s.last_layer]
                    work = sum(x.fwd_flops if kind == "F" else x.bwd_flops for x in layers)
                    resource = Resource("node", st.node).name
                    ends = None
                else:
                    assert st.hop is not None
                    link = net.link_between(*st.hop)
                    assert link is not None
                    work = transfer_bits(model.out_bytes(st.layer))
                    resource = Resource("link", link.source, link.target).name
                    ends = (link.source, link.target)
                items[(step, kind)] = _Item(step, kind, f"{st.name} {kind}", resource,
                                            affine.alpha, affine.beta, work, ends, st.node)
        self._items = items

    def observe(self, iteration: int, samples: Iterable[Sample]) -> None:
        """Add one iteration's measurements (the oldest falls out of the window)."""
        self._history.append((iteration, [s for s in samples if (s.step, s.kind)
                                          in self._items]))

    @property
    def full(self) -> bool:
        """True once ``window`` iterations have been observed."""
        return len(self._history) == self.window

    def ratios(self) -> dict[tuple[int, str], float]:
        """Median measured / planned per item over the window."""
        pooled: dict[tuple[int, str], list[float]] = {}
        for _, samples in self._history:
            for s in samples:
                item = self._items[(s.step, s.kind)]
                planned = item.planned(s.samples)
                if planned > 0:
                    pooled.setdefault((s.step, s.kind), []).append(
                        s.seconds / self.time_scale / planned)
        return {k: float(statistics.median(v)) for k, v in pooled.items()}

    def drift(self) -> Drift | None:
        """The drifted items once the window is full, else None."""
        if not self.full:
            return None
        off = [(key, r) for key, r in self.ratios().items() if abs(r - 1.0) > self.threshold]
        if not off:
            return None
        off.sort(key=lambda kv: -abs(kv[1] - 1.0))
        names = tuple((self._items[k].name, r) for k, r in off)
        resources = tuple(dict.fromkeys(self._items[k].resource for k, _ in off))
        return Drift(self._history[-1][0], names, resources)

    def estimates(self, resources: Iterable[str] | None = None) -> Estimates:
        """Effective bandwidths and FLOP/s over the window (of ``resources``, default all).

        A pass no longer than its overhead, or a transfer no longer than its latency, says
        nothing about the rate and is skipped.
        """
        wanted = None if resources is None else set(resources)
        per: dict[str, list[float]] = {}
        ends: dict[str, tuple[str, str]] = {}
        nodes: dict[str, str] = {}
        for _, samples in self._history:
            for s in samples:
                item = self._items[(s.step, s.kind)]
                if wanted is not None and item.resource not in wanted:
                    continue
                rate = rate_from_seconds(item.work, s.samples, s.seconds / self.time_scale,
                                         item.fixed)
                if rate is None:
                    continue
                per.setdefault(item.resource, []).append(rate)
                if item.link is not None:
                    ends[item.resource] = item.link
                elif item.node is not None:
                    nodes[item.resource] = item.node
        bandwidth: dict[tuple[str, str], float] = {}
        flops: dict[str, float] = {}
        for resource, values in per.items():
            value = float(statistics.median(values))
            if resource in ends:
                bandwidth[ends[resource]] = value
            else:
                flops[nodes[resource]] = value
        return Estimates(bandwidth, flops)


def calibrate(problem: Problem, estimates: Estimates) -> Problem:
    """``problem`` with the estimated bandwidths and FLOP/s written in (validated).

    Examples
    --------
    >>> from pipesl.problem import load_problem
    >>> p = load_problem("iot-digits")
    >>> q = calibrate(p, Estimates(bandwidth_bps={("mcu", "mesh1"): 1.6e6}))
    >>> q.network.link_between("mcu", "mesh1").bandwidth
    1600000.0
    """
    net = problem.network
    links = tuple(replace(e, bandwidth=estimates.bandwidth_bps[(e.source, e.target)])
                  if (e.source, e.target) in estimates.bandwidth_bps else e for e in net.links)
    nodes = tuple(replace(n, flops=estimates.flops[n.id]) if n.id in estimates.flops else n
                  for n in net.nodes)
    return validate_problem(replace(problem, network=replace(net, nodes=nodes, links=links)))
