"""Measured against predicted on the testbed: probe, plan on the probed problem, train.

:func:`measure_scenario` builds a :class:`~pipesl.testbed.netns.Testbed` for every node of a
problem (links full duplex, tbf at the configured bandwidths), probes every link with
``pipesl probe`` (the latency padding on the wire), plans on the probed problem, trains that
plan with ``pipesl worker`` in the namespaces, and compares each iteration's wall clock with
the simulator and the analytic T on the probed problem (and the simulator on the configured
one). Everything is removed afterwards, whatever happens.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.testbed.netns import Testbed
from pipesl.testbed.run import (
    kernel_problem,
    latency_padding,
    probe_testbed,
    stats_delta,
    train_testbed,
)

__all__ = ["LinkRow", "ScenarioResult", "measure_scenario"]


@dataclass(frozen=True)
class LinkRow:
    """One direction of a link: configured (tbf) against probed."""

    link: str
    direction: str
    configured_bps: float
    probed_bps: float
    spread: float
    latency_configured_s: float
    latency_probed_s: float
    """Per-transfer cost on a busy link (transfers back to back): the probed problem's."""
    latency_alone_s: float
    """Per-transfer cost of a transfer alone over an idle link."""
    padding_bytes: int

    @property
    def error(self) -> float:
        """probed / configured - 1."""
        return self.probed_bps / self.configured_bps - 1.0


@dataclass(frozen=True)
class ScenarioResult:
    """Everything :func:`measure_scenario` measured."""

    name: str
    configured: Problem
    """The problem as the testbed enforces it (links full duplex)."""
    probed: Problem
    plan: Plan
    """The planner's plan on the probed problem (the one trained)."""
    links: tuple[LinkRow, ...]
    train: dict[str, Any]
    """The source's ``pipesl worker --out`` JSON."""
    simulated_configured_s: float
    """The simulator's makespan of :attr:`plan` on the configured problem."""
    qdisc: dict[str, dict[str, int]]
    """Per interface, what the qdisc counters grew by during training."""

    @property
    def iterations(self) -> list[dict[str, Any]]:
        """Every iteration but the first (start-up: connections, caches)."""
        its: list[dict[str, Any]] = self.train["iterations"]
        return its[1:] if len(its) > 1 else its

    @property
    def measured_s(self) -> float:
        """Median measured iteration."""
        return statistics.median(it["measured_s"] for it in self.iterations)

    @property
    def errors(self) -> list[float]:
        """measured / simulated (probed problem) - 1 per iteration."""
        return [it["measured_s"] / it["simulated_s"] - 1.0 for it in self.iterations]

    @property
    def simulated_s(self) -> float:
        return float(self.train["simulated_s"])

    @property
    def analytic_s(self) -> float:
        return float(self.train["analytic_s"])


def _rows(tb: Testbed, configured: Problem, raw: dict[str, Any],
          padding: dict[frozenset[str], int]) -> list[LinkRow]:
    rows = []
    for est in raw["links"]:
        setup = tb.link(est["source"], est["target"])
        assert setup is not None
        i = configured.network.link_index(est["source"], est["target"])
        assert i is not None
        latency = configured.network.links[i].latency
        for d, alone in ((est["forward"], est["forward_alone"]),
                         (est["backward"], est["backward_alone"])):
            rows.append(LinkRow(f"{est['source']}-{est['target']}",
                                f"{d['sender']} > {d['receiver']}", setup.rate_bps,
                                d["bandwidth_bps"], d["spread"], latency, d["latency_s"],
                                alone["latency_s"],
                                padding.get(frozenset((est["source"], est["target"])), 0)))
    return rows


def measure_scenario(problem: Problem, *, steps: int = 6, reps: int = 8,
                     folder: Path | None = None, data: str = "digits",
                     plan: Plan | None = None, timeout_s: float = 600.0) -> ScenarioResult:
    """Probe, plan and train ``problem`` on a testbed (see the module docstring).

    ``plan`` trains that plan instead of the planner's on the probed problem.
    """
    from pipesl.sim import simulate
    from pipesl.solvers import solve

    configured = kernel_problem(problem)
    work = folder or Path(tempfile.mkdtemp(prefix="pipesl-testbed-"))
    nodes = tuple(n.id for n in configured.network.nodes)
    with Testbed(configured, nodes) as tb:
        pad = latency_padding(tb, configured)
        first = plan or solve(configured).plan
        probed, raw = probe_testbed(tb, configured, first, work, reps=reps, padding=pad,
                                    timeout_s=timeout_s)
        chosen = plan or solve(probed).plan
        before = tb.qdisc_stats()
        train = train_testbed(tb, probed, chosen, work, steps=steps, padding=pad,
                              options=("--data", data), timeout_s=timeout_s)
        qdisc = stats_delta(before, tb.qdisc_stats())
        rows = _rows(tb, configured, raw, {frozenset((u, v)): n for u, v, n in pad})
    sim = simulate(configured, chosen, train["schedule"], last_micro_batch="remainder")
    return ScenarioResult(problem.name, configured, probed, chosen, tuple(rows), train,
                          sim.makespan_s, qdisc)
