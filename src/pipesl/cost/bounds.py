"""Lower bounds on the makespan of one iteration that hold for every schedule they name.

SPEC section 3's analytic T is *not* a lower bound of the simulated makespan (SPEC section 5):
1F1B sends gradients back while the bottleneck still forwards, and a U-shaped label route
turns gradients round early, so either can finish before T (docs/simulator.md shows plans
20 % below it). The certified planner (:mod:`pipesl.solvers.makespan`) needs bounds that do
hold; this module derives them from the precedence structure alone, so they hold for any
plan, any sharing of links, and any table of the named shape. Notation: steps p = 0..P-1 in
pipeline order with forward time f_p and backward time g_p (``cost.plan_steps`` at b),
``HF(p) = sum_{s<p} f_s``, ``HG(p) = sum_{s<p} g_s``, ``D_p`` = every step after p forward
and backward (the round trip downstream of p), M micro-batches of b samples.

1. **Trip.** Micro-batch 0 visits every step forward, then backward: ``sum f + sum g``.
2. **Resource with heads and tails.** Every task on resource r (a node, a half-duplex link,
   one direction of a full-duplex link) runs on r alone; the first cannot start before the
   least *head* (time the task's micro-batch needs before it: HF(p) for F at p,
   ``sum f + (g after p)`` for B at p), the last leaves at least the least *tail* (F at p:
   the rest of the trip; B at p: HG(p)): ``min head + M * busy_r + min tail``.
3. **Window.** If at most W micro-batches are in flight on step p (the schedule's peak on its
   compute stage; a hop between stage k and k+1 inherits stage k's) and both passes of p use
   one resource, then after p's last forward at most W backwards remain and one of them waits
   D_p: ``HF(p) + M (f_p + g_p) + max(0, D_p - (W - 1) g_p) + HG(p)``. (On a full-duplex
   hop, whose passes use two resources: ``HF(p) + M f_p + D_p + g_p + HG(p)``.)
4. **Chain.** If the stage's order runs F(m') only after B(m) for a chain of n micro-batches
   (1F1B with warm-up w: n = ceil(M / w)), those round trips are sequential:
   ``HF(p) + n (f_p + g_p + D_p) + HG(p)``.
5. **Flush.** If the last compute stage c runs all forwards before any backward (GPipe), every
   forward task of a step <= c ends before F_c(M-1) ends and every backward task of a step
   <= c starts after it. So the iteration is a forward phase plus a backward phase:
   ``max_r [min HF + M sum f + min forward rest to c] + max_r [min backward rest from c +
   M sum g + min HG]`` over the forward and the backward tasks of each resource. On a plan
   where no resource carries two steps and no label route follows, this is the closed form
   ``sum t + (M - 1)(max f + max g)``, which is then the exact GPipe makespan
   (:func:`gpipe_closed_form`).

For a *partial* plan (a prefix of steps; the planner's branch and bound), the same formulas
hold with the unknown rest replaced by lower bounds of its forward and backward times (to the
last compute stage and in total), and with upper bounds on the windows; any future step adds
``sum f + sum g + M * t_min`` where t_min is the least time any node needs for one of the
layers still to place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipesl.cost.model import Resource, num_micro_batches
from pipesl.cost.steps import PipelineStep, plan_steps
from pipesl.plan import Plan
from pipesl.problem.types import Problem

__all__ = [
    "BOUND_NAMES",
    "Suffix",
    "chain_lengths",
    "flushes",
    "gpipe_closed_form",
    "pipeline_bound",
    "plan_bound_steps",
]


BOUND_NAMES = ("trip", "later_step", "resource", "window", "chain", "flush")
"""The bounds :func:`pipeline_bound` takes the largest of: 1. the trip, the trip plus M times
the least later step (partial plans), 2. resources with heads and tails, 3. windows,
4. chains, 5. the flush."""


@dataclass(frozen=True)
class Suffix:
    """Lower bounds on the part of the pipeline not yet decided (all zero: a whole plan)."""

    forward: float = 0.0
    """Forward time of every later step (label route included)."""
    backward: float = 0.0
    """Backward time of every later step."""
    forward_to_last: float = 0.0
    """Forward time of the later steps up to the last compute stage (label route excluded)."""
    backward_to_last: float = 0.0
    """Backward time of the later steps up to the last compute stage."""
    step_time: float = 0.0
    """Least forward + backward time of any single later step (0: none is known)."""
    step_forward: float = 0.0
    """Least forward time of a later compute step that must exist (0: none)."""
    step_backward: float = 0.0
    """Least backward time of such a step."""


def pipeline_bound(steps: Sequence[PipelineStep], micro_batch_size: int,
                   num_micro_batches: int, windows: Sequence[float], chains: Sequence[int],
                   flush: bool, to_last: int | None = None, suffix: Suffix = Suffix(),
                   times: tuple[Sequence[float], Sequence[float]] | None = None,
                   parts: dict[str, float] | None = None) -> float:
    """The largest of the bounds of the module docstring for these steps.

    Parameters
    ----------
    steps : sequence of PipelineStep
        The pipeline (or its prefix) in order; it starts with a compute step, and a hop
        takes the window and chain of the compute stage it leaves.
    micro_batch_size : int
        b, at which the steps' times are read.
    num_micro_batches : int
        M.
    windows : sequence of float
        Per compute stage, an upper bound on its micro-batches in flight (M always holds).
    chains : sequence of int
        Per compute stage, a lower bound on its chain of sequential round trips (1 holds).
    flush : bool
        True when the last compute stage runs every forward before any backward.
    to_last : int, optional
        Number of leading steps that are at or before the last compute stage (the rest are
        label hops); default: all of them.
    suffix : Suffix
        Lower bounds on the steps not in ``steps``.
    times : (sequence of float, sequence of float), optional
        The steps' forward and backward times at b when the caller keeps them (the planner's
        hot loop); default: read from the steps.
    parts : dict, optional
        Filled with each named bound of the module docstring (:data:`BOUND_NAMES`; 0 where
        one does not apply): the result is their largest. The tests check each one alone.
    """
    m = num_micro_batches
    b = micro_batch_size
    n = len(steps)
    c_end = n if to_last is None else to_last
    if times is None:
        fs: Sequence[float] = [s.forward(b) for s in steps]
        gs: Sequence[float] = [s.backward(b) for s in steps]
    else:
        fs, gs = times
    hf = [0.0] * (n + 1)
    hg = [0.0] * (n + 1)
    for i in range(n):
        hf[i + 1] = hf[i] + fs[i]
        hg[i + 1] = hg[i] + gs[i]
    sf, sg = hf[n], hg[n]
    rest = suffix.forward + suffix.backward
    trip = sf + sg + rest  # 1. trip
    later = sf + sg + m * suffix.step_time if suffix.step_time > 0 else 0.0  # a later step
    # 2. resources with heads and tails
    heads: dict[Resource, float] = {}
    tails: dict[Resource, float] = {}
    busy: dict[Resource, float] = {}
    for p, s in enumerate(steps):
        for r, head, dur, tail in (
                (s.forward_resource, hf[p], fs[p], sf - hf[p + 1] + rest + sg),
                (s.backward_resource, sf + rest + sg - hg[p + 1], gs[p], hg[p])):
            heads[r] = min(heads.get(r, math.inf), head)
            tails[r] = min(tails.get(r, math.inf), tail)
            busy[r] = busy.get(r, 0.0) + dur
    resource = max([heads[r] + m * load + tails[r] for r, load in busy.items()], default=0.0)
    # 3. windows and 4. chains
    window = chain = 0.0
    k = 0  # the compute stage of step p, or the one a hop leaves
    for p, s in enumerate(steps):
        f, g = fs[p], gs[p]
        if s.stage is not None:
            k = s.stage
        d = (sf - hf[p + 1]) + (sg - hg[p + 1]) + rest
        base = hf[p] + hg[p]
        if s.forward_resource == s.backward_resource:
            window = max(window, base + m * (f + g) + max(0.0, d - (windows[k] - 1) * g))
        else:  # a full-duplex hop: the last forward, its round trip, one backward
            window = max(window, base + m * f + d + g)
        if s.stage is not None and chains[k] > 1:
            chain = max(chain, base + chains[k] * (f + g + d))
    # 5. flush: a forward phase and a backward phase
    phases = 0.0
    if flush:
        sfc = hf[c_end] + suffix.forward_to_last
        sgc = hg[c_end] + suffix.backward_to_last
        f_head: dict[Resource, float] = {}
        f_tail: dict[Resource, float] = {}
        f_busy: dict[Resource, float] = {}
        b_head: dict[Resource, float] = {}
        b_tail: dict[Resource, float] = {}
        b_busy: dict[Resource, float] = {}
        for p in range(c_end):
            s = steps[p]
            r = s.forward_resource
            f_head[r] = min(f_head.get(r, math.inf), hf[p])
            f_tail[r] = min(f_tail.get(r, math.inf), sfc - hf[p + 1])
            f_busy[r] = f_busy.get(r, 0.0) + fs[p]
            r = s.backward_resource
            b_head[r] = min(b_head.get(r, math.inf), sgc - hg[p + 1])
            b_tail[r] = min(b_tail.get(r, math.inf), hg[p])
            b_busy[r] = b_busy.get(r, 0.0) + gs[p]
        phase_f = max([sfc + (m - 1) * suffix.step_forward,
                       *(f_head[r] + m * v + f_tail[r] for r, v in f_busy.items())])
        phase_b = max([sgc + (m - 1) * suffix.step_backward,
                       *(b_head[r] + m * v + b_tail[r] for r, v in b_busy.items())])
        phases = phase_f + phase_b
    if parts is not None:
        parts.update(trip=trip, later_step=later, resource=resource, window=window,
                     chain=chain, flush=phases)
    return max(trip, later, resource, window, chain, phases)


def plan_bound_steps(problem: Problem, plan: Plan) -> tuple[tuple[PipelineStep, ...], int]:
    """The plan's steps (:func:`pipesl.cost.plan_steps`), and how many lead up to its last
    compute stage (the rest are the label route's hops)."""
    steps = plan_steps(problem, plan)
    last = max(i + 1 for i, s in enumerate(steps) if s.stage is not None)
    return steps, last


def chain_lengths(orders: Sequence[Sequence[tuple[str, int]]]) -> tuple[int, ...]:
    """Per stage, the longest chain of micro-batches whose F waits, in the order, for the
    previous one's B (each link of the chain is a full round trip from that stage)."""
    out = []
    for order in orders:
        chain: dict[int, int] = {}
        done = 0
        for kind, mb in order:
            if kind == "F":
                chain[mb] = done + 1
            else:
                done = max(done, chain[mb])
        out.append(max(chain.values(), default=0))
    return tuple(out)


def flushes(orders: Sequence[Sequence[tuple[str, int]]]) -> bool:
    """True when the last stage runs every forward before its first backward."""
    last = orders[-1]
    m = len(last) // 2
    return all(kind == "F" for kind, _ in last[:m])


def gpipe_closed_form(problem: Problem, plan: Plan) -> float | None:
    """GPipe's exact makespan ``sum t + (M - 1)(max f + max g)`` where it applies, else None.

    It applies when no resource carries two tasks of different steps (no link shared by two
    hops, no half-duplex hop ... it is always two passes of one step) and no label route
    follows the last stage. Derivation: the forward phase is a flow shop of M identical jobs
    over private resources, ending at ``sum f + (M - 1) max f``; the last stage then starts
    the backward phase (a flush) on idle resources, again a flow shop:
    ``sum g + (M - 1) max g`` (tested against the simulator).
    """
    steps, last = plan_bound_steps(problem, plan)
    if last != len(steps):
        return None
    owner: dict[Resource, int] = {}
    for p, s in enumerate(steps):
        for r in (s.forward_resource, s.backward_resource):
            if owner.setdefault(r, p) != p:
                return None
    b = plan.micro_batch_size
    m = num_micro_batches(problem.training.batch_size, b)
    fs = [s.forward(b) for s in steps]
    gs = [s.backward(b) for s in steps]
    return math.fsum(fs) + math.fsum(gs) + (m - 1) * (max(fs) + max(gs))
