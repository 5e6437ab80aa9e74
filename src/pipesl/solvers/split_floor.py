"""GPipe's split floor: a lower bound on ``S + (M - 1)(max forward step + max backward step)``.

For GPipe without a label route, bound 5 of :mod:`pipesl.cost.bounds` (the flush) splits the
iteration into a forward phase and a backward phase. Take in the forward phase the resource
of the step p with the largest forward time F = f_p: its M forwards run one after another,
after the HF(p) that micro-batch 0 needs to reach p, and the last one still has the forward
rest after p to go, so the forward phase lasts at least ``sum f + (M - 1) F``; likewise the
backward phase at least ``sum g + (M - 1) G`` with G the largest backward time. Hence every
plan's GPipe makespan is at least

    S + (M - 1) (F + G),       S = sum f + sum g (the plan's first-micro-batch time),

which is at least the per-step floor ``S + (M - 1) max_p (f_p + g_p)`` and strictly more when
the slowest forward step is not the slowest backward step (a transformer's slow hop forwards
an activation as slowly as it returns the gradient, but a compute stage's backward is about
twice its forward).

**Computing a lower bound on its minimum over plans.** Let R(phi, gamma) be the relaxed
layered DP's least S (:func:`pipesl.solvers.layered.relaxed_dp`: hops priced on their own,
node reuse beyond 2-cycles allowed, the memory rule of GPipe) over plans whose compute stages
all have forward time <= phi and backward time <= gamma, and whose hops all have x <= min(phi,
gamma) (a hop forwards and returns in x each way). R is a lower bound on every such valid
plan's S and is non-increasing in both thresholds. For one b, with lam = M - 1:

    min over plans of S + lam (F + G) >= min_phi [ V(phi) + lam phi ],
    V(phi) = min_gamma [ R(phi, gamma) + lam gamma ]

because a plan with maxima F, G is admissible at (F, G), so its value is at least
``R(F, G) + lam G + lam F``. Each one-dimensional minimum is bounded by the threshold method
of :mod:`pipesl.solvers.threshold` (:func:`_min_plus_max`): an evaluation at tau gives a
lower bound s on the least S of the plans with value <= tau (and, when it returns a plan,
that plan's value v <= tau: every value in [v, tau] costs at least s + lam v); a gap (lo, hi)
of values not yet evaluated, with s_hi known at hi, costs at least ``s_hi + lam lo``. The
result is the least of the evaluated costs and of the open gaps' bounds, so a search stopped
by its budget or the clock still returns a valid (weaker) bound. Minimising over b: every b
is bounded the same way (the smallest b of each M dominates, as for the other bounds).

**Fewer evaluations.** (a) No plan has F below F_min, the least largest forward step of the
relaxation (a min-max DP over the same layered structure, hops priced by the min-max route
of their x: node reuse and link sharing only add plans, so it is a lower bound), nor G below
G_min: the searches start their first gap there, not at 0, and never probe thresholds where no
plan exists. (b) The outer search only asks whether V(phi) can reach ``upper - lam lo`` (lo
the lower end of the gap being split), so each inner search stops as soon as it proves that.
(c) An evaluation whose relaxed plan reuses no node is exact for every smaller threshold pair
that still admits that plan; such queries are answered from it. (d) All times are
non-decreasing in b and no stage admitted at b is refused at a smaller b, so R(inf, inf),
F_min and G_min of a smaller b bound those of a larger one, and S grows by at least
``(b - b') A`` from b' to b, A the least seconds per sample of the whole model on one
compute node (a plan's stages together run that work, each no faster than the fastest
node): ``R + (b - b') A + lam (F_min + G_min)`` from the previous b settles a b at or
above ``upper`` before any DP pass of its own; then with the source cut's cheap bounds on
this b's maxima (the source runs 1..j and one of its links carries layer j's output); then
with this b's own F_min and G_min (one min-max pass), before any relaxed DP pass.
(e) When ``lo < crit < hi`` for a gap, ``crit = (upper - s_hi) / lam``, values above crit
cost at least upper: the gap is evaluated at crit rather than bisected.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterable

import numpy as np

from pipesl.cost import CostTables, feasible_micro_batch_sizes, num_micro_batches, stage_phases
from pipesl.cost.bounds import gpipe_closed_form
from pipesl.exceptions import PipeslError
from pipesl.plan import Plan, validate_plan
from pipesl.problem.types import Problem
from pipesl.solvers.layered import (
    Context,
    RelaxedDP,
    Windows,
    branch,
    relaxed_dp,
    relaxed_plan,
    reused_node,
)
from pipesl.solvers.makespan_eval import plan_makespan
from pipesl.solvers.routes import RouteCache

__all__ = ["gpipe_split_floor"]

_BISECT_MIN = 1e-3
"""Gaps narrower than this fraction of their top are closed by one evaluation just below it."""
_SLIVER = 1e-11
"""That evaluation's threshold: ``hi (1 - _SLIVER)``; the sliver above it stays open with its
bound ``s_hi + lam tau`` (at most ``lam hi _SLIVER`` below the point at hi)."""
_PRUNE = 1e-10
"""Gaps whose bound is within this fraction of the best are not refined (their bound stays in
the result, which is then at most this fraction below the exact minimum)."""

Evaluation = tuple[float, float, float]
"""(a lower bound s on the least S among values <= tau; a split point v <= tau, the value of
the plan found (any v in [lo, tau] is valid: it only guides the search); extra data)."""


def _min_plus_max(evaluate: Callable[[float, float], Evaluation], lam: float, upper: float,
                  max_evaluations: int, deadline: float | None, floor: float = 0.0,
                  probe: bool = False) -> tuple[float, float]:
    """A lower bound on ``min over plans of S + lam * value`` (see the module docstring).

    ``evaluate(tau, lo)`` evaluates at tau; lo is the lower end of the gap being split
    (``floor`` at first): a lower bound s with ``s + lam lo >= upper`` settles that gap, so
    the evaluation may stop as soon as it knows ``s >= upper - lam lo``. ``floor`` is a lower
    bound on every plan's value (no threshold below it is evaluated).

    Returns the bound (a bound at or above ``upper`` only says "no better than upper") and the
    ``extra`` of the evaluated point with the least cost (nan when none). ``probe``: also
    evaluate at ``floor`` right away (worth it while ``upper`` is loose: a plan found there
    is often the best, and its cost tightens every later cut).
    """
    s0, v0, x0 = evaluate(math.inf, floor)
    if not math.isfinite(s0):
        return math.inf, math.nan
    best, best_x = s0 + lam * max(v0, floor), x0
    final = math.inf  # bounds of gaps too narrow to refine
    heap: list[tuple[float, int, float, float, float]] = []  # (bound, seq, lo, hi, s_hi)
    seq = itertools.count()
    evaluations = 1
    if v0 > floor:
        if probe and floor > 0 and s0 + lam * floor < min(best, upper) * (1 - _PRUNE):
            # probe the bottom first: a plan at the least possible value, when there is one,
            # is often the best, and its cost then prunes the gap above by its crit
            s1, _, x1 = evaluate(floor, floor)
            evaluations += 1
            if math.isfinite(s1) and s1 + lam * floor < best:
                best, best_x = s1 + lam * floor, x1
        heapq.heappush(heap, (s0 + lam * floor, next(seq), floor, v0, s0))
    while heap:
        lb, _, lo, hi, s_hi = heap[0]
        if lb >= min(best, upper) * (1 - _PRUNE):
            break
        if evaluations >= max_evaluations or (deadline is not None
                                              and time.perf_counter() > deadline):
            break
        heapq.heappop(heap)
        if hi - lo <= _SLIVER * hi:
            final = min(final, lb)
            continue
        walk = hi - lo <= _BISECT_MIN * hi
        tau = max(hi * (1 - _SLIVER), lo) if walk else (lo + hi) / 2
        # values above crit cost at least s_hi + lam crit = the cap: evaluating at crit
        # settles (crit, hi] at once and tightens the rest
        crit = (min(best, upper) - s_hi) / lam if lam > 0 else math.inf
        if lo < crit < hi and not walk:
            tau = crit
        s, v, x = evaluate(tau, lo)
        evaluations += 1
        if math.isfinite(s):
            v = min(max(v, lo), tau)
            if s + lam * v < best:
                best, best_x = s + lam * v, x
            if v > lo:
                heapq.heappush(heap, (s + lam * lo, next(seq), lo, v, s))
        heapq.heappush(heap, (s_hi + lam * tau, next(seq), tau, hi, s_hi))
    top = heap[0][0] if heap else math.inf
    return min(best, top, final), best_x


class _SplitTables:
    """Forward and backward times of every compute stage and hop of one b."""

    def __init__(self, problem: Problem, tables: CostTables, ctx: Context):
        self.ctx = ctx
        b = ctx.b
        layers = problem.model.layers
        self.forward = tables.all_stage_forward_times(
            b, ctx.compute, np.array([x.fwd_flops for x in layers]))
        times = ctx.stage_times  # +inf where a stage cannot run (memory, source rule)
        self.backward = times - self.forward
        self.forward = np.where(np.isfinite(times), self.forward, np.inf)
        # a hop's load on its link is share * 2x: x <= h  <=>  load <= 2 share h
        self.hop_factor = float(2.0 * tables.load_share.max()) if len(tables.load_share) else 1.0
        self.best: tuple[float, Plan] | None = None
        """The valid plan of least GPipe makespan met among the relaxed plans."""
        self.cap = math.inf
        """Plans that cannot run faster than this are not simulated (:meth:`keep`)."""
        self.simulated = 0
        self.exact: list[tuple[float, float, float, float, float]] = []
        """Evaluations (phi, gamma, value, f_max, g_max) whose relaxed plan reuses no node:
        value is then R'(phi, gamma) and the plan's maxima are (f_max, g_max), so every
        query (phi2, gamma2) with f_max <= phi2 <= phi and g_max <= gamma2 <= gamma has the
        same R' (R' is non-increasing in both thresholds and that plan is admissible)."""

    def source_cut(self) -> tuple[float, float]:
        """Cheap lower bounds on F_min and G_min: the source runs layers 1..j, and unless j = L
        one of its own links carries layer j's output (that hop's x both ways)."""
        ctx = self.ctx
        src = ctx.compute_pos[ctx.source]
        f = self.forward[src, 0, 1:]  # j = 1..L
        g = self.backward[src, 0, 1:]
        node = ctx.source
        tables = ctx.tables
        incident = (tables.link_u == node) | (tables.link_v == node)
        x = ctx.routes.times[incident, 1:] / 2.0  # layer j's output, each way
        hop = x.min(axis=0) if x.size else np.full(len(f), np.inf)
        hop[-1] = 0.0  # j = L: nothing leaves the source (no label route here)
        return float(np.maximum(f, hop).min()), float(np.maximum(g, hop).min())

    def least_maxima(self) -> tuple[float, float]:
        """(F_min, G_min): lower bounds on every valid plan's largest forward and largest
        backward step (module docstring, (a)); inf when no plan exists."""
        ctx = self.ctx
        routes = ctx.routes
        L = ctx.num_layers
        comp = ctx.compute
        n = routes.n
        x = routes.times / 2.0  # (E, L + 1): each way of a hop
        u, v = ctx.tables.link_u, ctx.tables.link_v
        # min-max route distances, one Floyd-Warshall over every distinct hop-time column
        index: dict[bytes, int] = {}
        which = [index.setdefault(x[:, j].tobytes(), len(index)) for j in range(L + 1)]
        columns = x[:, [which.index(q) for q in range(len(index))]].T
        d = np.full((len(columns), n, n), np.inf)
        for q, col in enumerate(columns):
            np.minimum.at(d[q], (u, v), col)
            np.minimum.at(d[q], (v, u), col)
        d[:, np.arange(n), np.arange(n)] = 0.0
        for k in range(n):
            np.minimum(d, np.maximum(d[:, :, k:k + 1], d[:, k:k + 1, :]), out=d)
        between = d[:, comp][:, :, comp]
        between[:, np.arange(len(comp)), np.arange(len(comp))] = np.inf  # two distinct nodes
        hop = between[which]  # (L + 1, C, C)
        times = np.stack((self.forward, self.backward))  # (2, C, L, L + 1)
        arrived = np.full((2, L + 1, len(comp)), np.inf)
        placed = np.full((2, L + 1, len(comp)), np.inf)
        placed[:, L] = 0.0
        for l in range(L - 1, -1, -1):
            rest = np.transpose(placed[:, l + 1:], (0, 2, 1))  # (2, C, L - l)
            arrived[:, l] = np.maximum(times[:, :, l, l + 1:], rest).min(axis=2)
            if l >= 1:
                placed[:, l] = np.maximum(hop[l][None], arrived[:, l][:, None, :]).min(axis=2)
        src = ctx.compute_pos[ctx.source]
        return float(arrived[0, 0, src]), float(arrived[1, 0, src])

    def keep(self, plan: Plan, lower: float) -> None:
        """Remember ``plan`` when it is valid and the fastest met: its makespan is the closed
        form when that applies, else simulated — only when ``lower`` (its own split bound
        ``S + (M - 1)(max f + max g)``) is below :attr:`cap` and the best so far."""
        problem = self.ctx.problem
        try:
            validate_plan(problem, plan)
        except PipeslError:
            return
        if not feasible_micro_batch_sizes(problem, plan)[plan.micro_batch_size - 1]:
            return
        t = gpipe_closed_form(problem, plan)
        if t is None:
            if lower >= min(self.cap, self.best[0] if self.best is not None else math.inf):
                return
            t = plan_makespan(problem, plan)
            self.simulated += 1
        if self.best is None or t < self.best[0]:
            self.best = (t, plan)

    def evaluate(self, phi: float, gamma: float, budget: int = 1
                 ) -> tuple[float, float, float]:
        """(a lower bound on R'(phi, gamma), largest forward, largest backward of the plan).

        R' is R with every node computing one stage: the relaxed plan that reuses a node is
        split three ways by :func:`~pipesl.solvers.layered.branch` (a partition of the plans
        where the node runs one stage), best first, up to ``budget`` DP passes; the result is
        the least open bound, a lower bound on R' (and R <= R' <= every valid plan's S).
        """
        for p_, g_, value_, f_max_, g_max_ in self.exact:
            if f_max_ <= phi <= p_ and g_max_ <= gamma <= g_:
                return value_, f_max_, g_max_
        ctx = self.ctx
        admitted = (self.forward <= phi) & (self.backward <= gamma)
        hop_tau = self.hop_factor * min(phi, gamma)
        counter = itertools.count()

        def node(windows: Windows) -> tuple[float, int, Windows, RelaxedDP, np.ndarray]:
            times = np.where(admitted, ctx.times(windows), np.inf)
            dp = relaxed_dp(ctx, hop_tau, windows, stage_times=times)
            return dp.value, next(counter), windows, dp, times

        heap = [node(())]
        passes = 1
        while heap:
            value, _, windows, dp, times = heap[0]
            if not math.isfinite(value):
                return math.inf, phi, gamma
            plan = relaxed_plan(ctx, dp, stage_times=times)
            reuse = None if plan is None else reused_node(ctx, plan)
            if reuse is None or passes >= budget:
                f_max, g_max = phi, gamma
                if plan is not None:
                    try:
                        phases = stage_phases(ctx.problem, plan)
                    except (PipeslError, KeyError, ValueError):
                        phases = ()
                    if phases:
                        f_max = max(p.forward(ctx.b) for p in phases)
                        g_max = max(p.backward(ctx.b) for p in phases)
                        if reuse is None:
                            self.exact.append((phi, gamma, value, f_max, g_max))
                            self.keep(plan, value + ctx.bottleneck_weight * (f_max + g_max))
                return value, f_max, g_max
            heapq.heappop(heap)
            for child in branch(windows, reuse[0], reuse[1], ctx.num_layers):
                heapq.heappush(heap, node(child))
                passes += 1
        return math.inf, phi, gamma


def gpipe_split_floor(problem: Problem, sizes: Iterable[int], upper: float = math.inf, *,
                      deadline: float | None = None, max_evaluations: int = 48,
                      budget: int = 1, first: Iterable[int] = ()) -> tuple[float, list[Plan]]:
    """A proven lower bound on every plan's GPipe makespan (no label route) over ``sizes``,
    and the valid plans (one per b at most) of least makespan the search met:
    when one of them reaches the bound it is optimal.

    See the module docstring. A value at or above ``upper`` only says "no plan beats upper".
    ``max_evaluations`` caps each one-dimensional search and ``budget`` the DP passes of
    each evaluation's node branching (the bound stays valid either way, just weaker).
    ``first``: micro-batch sizes to bound before the others (likely ones: a good plan found
    early lowers the cap that prunes every later b's search; the order changes no bound's
    validity).
    """
    tables = CostTables.from_problem(problem)
    cache = RouteCache()
    B = problem.training.batch_size
    floor = math.inf
    plans: list[Plan] = []
    found = math.inf  # the least closed form of those plans
    # (R(inf, inf), F_min, G_min) of the b already bounded: (d) for the larger ones
    prior_of: dict[int, tuple[float, float, float]] = {}
    order = sorted(set(sizes))
    # every plan's S has slope (seconds per sample) at least that of the whole model on the
    # fastest compute node: its stages' slopes sum the same work at no higher speed
    compute = np.flatnonzero(tables.can_compute)
    slope = float(tables.stage_alpha(compute, 1, tables.num_layers).min()) if len(compute) \
        else 0.0
    ahead = [b for b in dict.fromkeys(first) if b in order]
    for b in ahead + [b for b in order if b not in ahead]:
        below = [c for c in prior_of if c < b]
        prior = None
        if below:  # (d): S grows at least at the least slope of any plan
            r_prev, f_prev, g_prev = prior_of[max(below)]
            prior = (r_prev + (b - max(below)) * slope, f_prev, g_prev)
        if deadline is not None and time.perf_counter() > deadline:
            return 0.0, plans  # not every b bounded: nothing proven
        lam = float(num_micro_batches(B, b) - 1)
        cap = min(upper, floor, found)
        if prior is not None and prior[0] + lam * (prior[1] + prior[2]) >= cap:
            floor = min(floor, prior[0] + lam * (prior[1] + prior[2]))  # (d): no DP at all
            continue
        ctx = Context(problem, tables, b, cache)
        split = _SplitTables(problem, tables, ctx)
        split.cap = cap
        if prior is not None:  # (d) with the source's own cut, before the min-max DP
            f_cut, g_cut = split.source_cut()
            value = prior[0] + lam * (max(prior[1], f_cut) + max(prior[2], g_cut))
            if value >= cap:
                floor = min(floor, value)
                prior_of[b] = (prior[0], max(prior[1], f_cut), max(prior[2], g_cut))
                continue
        f_min, g_min = split.least_maxima()
        if not math.isfinite(f_min + g_min):
            continue  # no plan at this b
        if prior is not None and prior[0] + lam * (f_min + g_min) >= cap:
            floor = min(floor, prior[0] + lam * (f_min + g_min))  # (d) with this b's maxima
            prior_of[b] = (prior[0], f_min, g_min)
            continue
        r_inf: list[float] = []

        def outer(phi: float, lo: float, split: _SplitTables = split, lam: float = lam,
                  cap: float = cap, r_inf: list[float] = r_inf, g_min: float = g_min,
                  probe: bool = not math.isfinite(found)) -> Evaluation:
            def inner(gamma: float, _lo: float) -> Evaluation:
                s, f_max, g_max = split.evaluate(phi, gamma, budget)
                if not r_inf:
                    r_inf.append(s)  # R(inf, inf)
                return s, g_max, f_max

            # V(phi) >= cap - lam lo settles the outer gap: the inner search stops there
            value, f_best = _min_plus_max(inner, lam, cap - lam * lo, max_evaluations,
                                          deadline, g_min, probe)
            # split at the forward maximum of the best plan found (a heuristic: any split holds)
            v = f_best if math.isfinite(f_best) else phi
            return value, v, math.nan

        bound, _ = _min_plus_max(outer, lam, cap, max_evaluations, deadline, f_min,
                                 not math.isfinite(found))
        floor = min(floor, bound)
        if r_inf and math.isfinite(r_inf[0]):
            prior_of[b] = (r_inf[0], f_min, g_min)
        if split.best is not None:
            plans.append(split.best[1])
            found = min(found, split.best[0])
    return floor, plans
