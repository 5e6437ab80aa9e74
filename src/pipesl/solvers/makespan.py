"""Schedule-true planning: the plan and b of least *simulated* makespan, with a certificate.

What a user's iteration takes is the makespan of the chosen schedule (SPEC section 5), not
SPEC section 3's analytic T, and T is not even a lower bound of it (1F1B and label routes can
beat it). :func:`solve_makespan` minimises the makespan itself:

1. **Incumbent.** The analytic optimum (:func:`pipesl.solvers.exact.solve_exact`), with its
   placement simulated at every micro-batch size that fits, gives a first plan and its
   makespan U. For GPipe without a label route the exact solver minimises instead
   ``S + (M - 1) * (largest load of one step)`` (``per_step=True``: shared links not summed),
   a lower bound on every plan's makespan, and its plan is the incumbent: when the bound
   reaches U, U is proven at once; otherwise the split floor
   (:mod:`pipesl.solvers.split_floor`) follows, and the plans it meets may lower U.
2. **Certified branch and bound.** A best-first search over partial plans — the decision
   structure of the planner: the source's stage, then a route (enumerated lazily in order of
   increasing time, :func:`networkx.shortest_simple_paths`), the next node and its layers, and
   so on, the label route last — for every b = ceil(B / M) (and, for 1F1B, whose windows
   depend on it, every number of stages K). Each partial plan carries a lower bound on the
   makespan of every completion (:func:`pipesl.cost.bounds.pipeline_bound`: trip, resources
   with heads and tails, windows, chains, the GPipe flush; the undecided rest by a relaxed
   layered DP of its least forward and backward times). States are expanded in increasing
   bound; a complete plan whose bound is below U is evaluated exactly — by GPipe's closed
   form where it applies (no shared resource, no label route), else by the simulator.
3. **Stop.** When the smallest open bound reaches U, the incumbent is optimal: no plan and no
   b can run faster (``optimal = True``, ``lower_bound_s = objective_s``). A time limit
   returns the incumbent with ``optimal = False`` and the smallest open bound.

The roots are the smallest b of each M. Every pass time is non-decreasing in b, so every
bound is; the makespan is too when every resource serves its tasks in a fixed order
(:func:`fixed_order`, proof in docs/planner.md), and otherwise a closed plan is also evaluated
at the larger b of its M (:meth:`_Search.close`): under 1F1B-net and on shared FIFO links a
larger b of the same M can run faster.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from pipesl import cost
from pipesl.cost import num_micro_batches
from pipesl.cost.bounds import Suffix, gpipe_closed_form, pipeline_bound, plan_bound_steps
from pipesl.cost.steps import PipelineStep
from pipesl.exceptions import InfeasibleError
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.makespan_eval import plan_makespan
from pipesl.solvers.makespan_tables import PassTables
from pipesl.solvers.result import SolveResult, finish

__all__ = ["plan_makespan", "solve_makespan"]

_REL_TOL = 1e-9


@dataclass(frozen=True)
class _State:
    """A partial plan. ``kind``: 0 placed (a stage just ended at ``node`` after ``layer``),
    1 route generator (the ``index``-th route to ``target``), 2 arrived (at ``node``),
    3 the root of micro-batch size b (nothing decided)."""

    kind: int
    b: int
    k_total: int
    """K for schedules whose windows depend on it (1F1B), else 0 (free)."""
    node: int
    layer: int
    steps: tuple[PipelineStep, ...]
    stages: tuple[Stage, ...]
    routes: tuple[tuple[str, ...], ...]
    used: frozenset[int]
    fwd: tuple[float, ...]
    """The steps' forward times at b (what the bounds read; kept beside the steps)."""
    bwd: tuple[float, ...]
    """Their backward times at b."""
    target: int = -1
    index: int = 0
    label: bool = False
    exact: bool = False
    """Route generator: True when its bound used route ``index``'s own time."""


def fixed_order(problem: Problem, plan: Plan) -> bool:
    """True when the order in which every resource serves its tasks cannot depend on the
    pass times, so that the simulated makespan is non-decreasing in b for a fixed M.

    That holds (docs/planner.md, section 0) under ``gpipe`` and ``1f1b``, whose tables depend
    on K and M only, when every link resource carries one stream of tasks — the forwards or
    the backwards of one step — or, under GPipe, the forwards and then the backwards of one
    step before the last compute stage (the flush puts every forward before any backward).
    """
    if problem.training.schedule not in ("gpipe", "1f1b"):
        return False
    steps, last = plan_bound_steps(problem, plan)
    streams: dict[object, set[tuple[int, int]]] = {}
    for p, s in enumerate(steps):
        if s.stage is not None:
            continue  # one stage per node, served in the table's order
        streams.setdefault(s.forward_resource, set()).add((p, 0))
        streams.setdefault(s.backward_resource, set()).add((p, 1))
    for users in streams.values():
        if len(users) == 1:
            continue
        ps = {p for p, _ in users}
        if not (problem.training.schedule == "gpipe" and len(ps) == 1
                and next(iter(ps)) < last):
            return False
    return True


class _Search:
    def __init__(self, problem: Problem, sizes: list[int], deadline: float | None,
                 siblings: bool = False):
        self.problem = problem
        self.siblings = siblings
        """Also evaluate a closed plan at the larger b of its M (see :meth:`close`)."""
        self.schedule = problem.training.schedule
        self.deadline = deadline
        self.sizes = sizes
        self.tables = cost.CostTables.from_problem(problem)
        self.per_b: dict[int, PassTables] = {}
        """Built when the search first reaches b (its root's cheap bound is below U)."""
        self.best: tuple[float, Plan] | None = None
        self.floor = 0.0
        """A lower bound on every plan's makespan (GPipe without labels: the per-step
        analytic optimum)."""
        self.heap: list[tuple[float, int, _State | Plan]] = []
        """Partial plans, and closed plans waiting to be tried at the next b of their M
        (:meth:`close`), keyed by a lower bound on everything they stand for."""
        self.seq = itertools.count()
        self.counters = {"states": 0, "pushed": 0, "simulated": 0, "closed_form": 0,
                         "routes": 0, "b_values": len(sizes)}

    # ---------------------------------------------------------------- bounds
    def windows(self, pb: PassTables, stages: tuple[Stage, ...], k_total: int) -> tuple[
            list[float], list[int], bool]:
        m = pb.m
        n = max(len(stages), 1)
        if self.schedule == "gpipe":
            return [float(m)] * n, [1] * n, True
        if self.schedule == "1f1b":
            w = [float(min(m, k_total - k)) for k in range(n)] if k_total else [float(m)] * n
            return w, [math.ceil(m / x) for x in w], m == 1
        # 1f1b-net: at most what fits, non-increasing along the pipeline
        w, cap = [], float(m)
        for k, s in enumerate(stages):
            i, j = s.first_layer - 1, s.last_layer
            c = pb.index[s.node]
            act = pb.b * pb.act[i, j]
            free = pb.memory[c] - pb.state[i, j]
            fit = float(m) if act <= 0 or free >= m * act else max(1.0, math.floor(free / act))
            cap = min(cap, fit)
            w.append(cap)
            del k
        w = w or [float(m)]
        return w, [math.ceil(m / x) for x in w], m == 1

    def bound(self, state: _State, suffix: Suffix, to_last: int | None = None) -> float:
        pb = self.per_b[state.b]
        w, ch, flush = self.windows(pb, state.stages, state.k_total)
        return pipeline_bound(state.steps, pb.b, pb.m, w, ch, flush, to_last, suffix,
                              (state.fwd, state.bwd))

    def push(self, value: float, state: _State | Plan) -> None:
        value = max(value, self.floor)
        if self.best is not None and value >= self.best[0] * (1 - _REL_TOL):
            return
        self.counters["pushed"] += 1
        heapq.heappush(self.heap, (value, next(self.seq), state))

    def plan_bound(self, plan: Plan) -> float:
        """A lower bound on ``plan``'s makespan valid for every table of the schedule:
        windows M, chains 1, the flush for GPipe (:func:`pipesl.cost.bounds.pipeline_bound`)."""
        steps, last = plan_bound_steps(self.problem, plan)
        n = max((s.stage for s in steps if s.stage is not None), default=0) + 1
        b = plan.micro_batch_size
        m = num_micro_batches(self.problem.training.batch_size, b)
        return pipeline_bound(steps, b, m, [float(m)] * n, [1] * n, self.schedule == "gpipe",
                              last)

    def offer_all(self, plans: Iterable[Plan]) -> None:
        """Offer the feasible ``plans`` in order of increasing :meth:`plan_bound`: the first
        set an incumbent, and once a bound reaches it the rest cannot beat it."""
        fits = [p for p in plans
                if cost.feasible_micro_batch_sizes(self.problem, p)[p.micro_batch_size - 1]]
        for bound, _, plan in sorted((self.plan_bound(p), i, p) for i, p in enumerate(fits)):
            if self.best is not None and bound >= self.best[0]:
                self.counters["offers_pruned"] = (self.counters.get("offers_pruned", 0)
                                                  + 1)
                continue
            self.offer(plan, bound)

    def offer(self, plan: Plan, bound: float | None = None) -> None:
        """Make ``plan`` the incumbent if it runs faster; a plan whose bound (windows M,
        chains 1, the flush for GPipe: valid for every table of the schedule) already
        reaches the incumbent is not simulated."""
        problem = self.problem
        if not cost.feasible_micro_batch_sizes(problem, plan)[plan.micro_batch_size - 1]:
            return
        if self.best is not None and (self.plan_bound(plan) if bound is None else bound) \
                >= self.best[0]:
            self.counters["offers_pruned"] = self.counters.get("offers_pruned", 0) + 1
            return
        if self.schedule == "gpipe" and gpipe_closed_form(problem, plan) is not None:
            self.counters["closed_form"] += 1
        else:
            self.counters["simulated"] += 1
        t = plan_makespan(problem, plan)
        if self.best is None or t < self.best[0]:
            self.best = (t, plan)

    def close(self, plan: Plan) -> None:
        """A complete plan of the search at b = ceil(B / M): offered, and — unless its
        resources serve their tasks in a fixed order (:func:`fixed_order`: then its makespan
        is non-decreasing in b for this M) — queued for the larger b of the same M
        (:meth:`sibling`)."""
        self.offer(plan)
        if self.siblings and not fixed_order(self.problem, plan):
            self.queue_sibling(plan)

    def queue_sibling(self, plan: Plan) -> None:
        """Queue ``plan`` at the next b of its M, keyed by its bound: the bound and the memory
        need are non-decreasing in b, so the key bounds every later b of the walk too, and
        the best-first order tries a sibling only once no cheaper state is left."""
        batch = self.problem.training.batch_size
        b = plan.micro_batch_size + 1
        if b > batch or num_micro_batches(batch, b) != num_micro_batches(batch, b - 1):
            return
        other = plan.with_micro_batch_size(b)
        if cost.feasible_micro_batch_sizes(self.problem, other)[b - 1]:
            self.push(self.plan_bound(other), other)

    def sibling(self, plan: Plan) -> None:
        """Try a queued plan at its b (unless this b's own table bound already reaches the
        incumbent: not monotone in b under 1F1B-net), then queue the next b."""
        from pipesl.schedules import makespan_lower_bound

        if self.best is None or makespan_lower_bound(self.problem, plan) < self.best[0]:
            self.counters["siblings"] = self.counters.get("siblings", 0) + 1
            self.offer(plan)
        self.queue_sibling(plan)

    # ---------------------------------------------------------------- expansion
    def roots(self) -> None:
        """One root per b, bounded by ``max(S, M beta)`` from the exact solver's cheap bounds
        (the trip and the busiest resource) — for GPipe without a label route by
        ``S + (M - 1) beta`` (bound 5 of :mod:`pipesl.cost.bounds`: the flush makes every
        step's ``sum t + (M - 1) t_p`` a bound, and the cheap beta bounds one step's time) —
        so that b's tables are built only when the search reaches it."""
        from pipesl.cost.analytic_bounds import AnalyticBounds

        problem = self.problem
        cheap = AnalyticBounds(problem, self.tables)
        flush_chain = self.schedule == "gpipe" and problem.training.labels_at is None
        for b in self.sizes:
            m = num_micro_batches(problem.training.batch_size, b)
            value = max(cheap.sum_lb(b), m * cheap.beta_lb(b))
            if flush_chain:  # GPipe without labels: S + (M - 1) t_p for every step p
                value = max(value, cheap.sum_lb(b) + (m - 1) * cheap.beta_lb(b))
            if np.isfinite(value):
                self.push(value, _State(3, b, 0, -1, 0, (), (), (), frozenset(), (), ()))

    def start(self, b: int) -> None:
        """b's tables, and its first stages (for 1F1B, one search per number of stages K)."""
        pb = self.per_b[b] = PassTables(self.problem, b, self.tables)
        L = pb.L
        ks = range(1, min(L, len(pb.compute)) + 1) if self.schedule == "1f1b" else [0]
        for k_total in ks:
            self.place(pb, k_total, _State(2, b, k_total, pb.src, 0, (), (), (), frozenset(),
                                           (), ()))

    def place(self, pb: PassTables, k_total: int, parent: _State) -> None:
        """Children of 'node computes next after ``layer``' (``parent``, arrived at node
        ``parent.node`` after layer ``parent.layer``): one per last layer."""
        steps, stages, routes = parent.steps, parent.stages, parent.routes
        used, node, layer = parent.used, parent.node, parent.layer
        k = len(stages)
        L = pb.L
        ok = pb.fits(node, layer, k, k_total)
        nid = pb.ids[node]
        for j in range(layer + 1, L + 1):
            if not ok[j]:
                continue
            if k_total:
                if k == k_total - 1 and j != L:
                    continue
                if k < k_total - 1 and (j == L or L - j < k_total - 1 - k):
                    continue
            st = Stage(nid, layer + 1, j)
            if j == L and pb.label is None:
                self.close(Plan((*stages, st), routes, pb.b, None))
                continue
            step, f, g = pb.compute_step(node, layer, j, k)
            state = _State(0, pb.b, k_total, node, j, (*steps, step), (*stages, st), routes,
                           used | {node}, (*parent.fwd, f), (*parent.bwd, g))
            self.push(self.bound(state, pb.suffix_placed(j, node, state.used)), state)

    def expand(self, state: _State | Plan) -> None:
        if isinstance(state, Plan):
            self.sibling(state)
            return
        if state.kind == 3:
            self.start(state.b)
            return
        pb = self.per_b[state.b]
        if state.kind == 0:
            if state.layer == pb.L:  # the label route
                assert pb.label is not None
                self.push_route(replace(state, kind=1, target=pb.label, index=0, label=True))
                return
            for m in pb.compute:
                if m in state.used or m == pb.src:
                    continue
                if not np.isfinite(pb.rest["F"][1][state.layer, m]):
                    continue
                self.push_route(replace(state, kind=1, target=m, index=0))
            return
        if state.kind == 1:
            route = pb.path(state.node, state.target, state.layer, state.index)
            if route is None:
                return
            if not state.label and state.index > 0 and not state.exact:
                # the bound used the previous route's time; refine it with this one's
                self.push_route(replace(state, exact=True), route)
                return
            self.counters["routes"] += 1
            self.push_route(replace(state, index=state.index + 1, exact=False), route)
            if state.label:
                plan = Plan(state.stages, state.routes, pb.b, route)
                self.close(plan)
                return
            hops, fs, gs = pb.hop_steps(route, state.layer)
            arrived = replace(state, kind=2, node=state.target, steps=state.steps + hops,
                              routes=(*state.routes, route), target=-1, index=0,
                              fwd=state.fwd + fs, bwd=state.bwd + gs)
            self.push(self.bound(arrived, pb.suffix_arrived(state.layer, state.target,
                                                            arrived.used)), arrived)
            return
        self.place(pb, state.k_total, state)

    def push_route(self, state: _State, known: tuple[str, ...] | None = None) -> None:
        """Push the generator of routes number ``index`` and later. Its bound uses the time of
        route ``index`` when ``exact`` (or for index 0), else that of the route before it
        (``known``, no slower: routes come by increasing time), so that a route is looked
        for only when its generator reaches the top of the queue."""
        pb = self.per_b[state.b]
        if state.index == 0 or state.label:
            route = pb.path(state.node, state.target, state.layer, state.index)
            if route is None:
                return
            state = replace(state, exact=True)
        else:
            route = known
            assert route is not None
        x = pb.route_time(route, state.layer)
        if state.label:
            suffix = Suffix(x, x, 0.0, 0.0)
            self.push(self.bound(state, suffix, to_last=len(state.steps)), state)
        else:
            suffix = pb.suffix_arrived(state.layer, state.target, state.used, x,
                                       (state.node, state.target))
            self.push(self.bound(state, suffix), state)

    def run(self) -> bool:
        """Expand states best-first; True when the incumbent is proven optimal."""
        while self.heap:
            value, _, state = self.heap[0]
            if self.best is not None and value >= self.best[0] * (1 - _REL_TOL):
                return True
            if self.deadline is not None and time.perf_counter() > self.deadline:
                return False
            heapq.heappop(self.heap)
            self.counters["states"] += 1
            self.expand(state)
        return True

    def lower_bound(self) -> float:
        top = self.heap[0][0] if self.heap else math.inf
        return min(top, self.best[0]) if self.best is not None else top


def solve_makespan(problem: Problem, micro_batch_sizes: list[int] | None = None, *,
                   time_limit: float | None = None) -> SolveResult:
    """The plan and b of least simulated makespan under ``training.schedule``, certified.

    Parameters
    ----------
    problem : Problem
    micro_batch_sizes : list of int, optional
        Restrict b (default: the problem's fixed b, else every b = ceil(B / M)).
    time_limit : float, optional
        Seconds; on expiry the best plan so far, ``optimal = False``, with a lower bound.

    Raises
    ------
    InfeasibleError
        No valid plan.
    """
    from pipesl.solvers.exact import solve_exact
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes

    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    tr = problem.training
    if micro_batch_sizes is not None:
        sizes = sorted({int(b) for b in micro_batch_sizes})
    elif tr.micro_batch_size is not None:
        sizes = [tr.micro_batch_size]
    else:
        sizes = candidate_micro_batch_sizes(tr.batch_size)
    flush_chain = tr.schedule == "gpipe" and tr.labels_at is None
    # The incumbent: the analytic optimum — for GPipe without labels the per-step optimum
    # (below), whose plan is as good a start and whose bound is needed anyway. Either solve
    # raises InfeasibleError when no plan fits.
    seed = solve_exact(problem, sizes, time_limit=time_limit, per_step=flush_chain)
    # every b of each M is covered: the smallest searched, the others walked from it (close)
    search = _Search(problem, sizes, deadline, siblings=micro_batch_sizes is None
                     and tr.micro_batch_size is None)
    search.offer_all(seed.plan.with_micro_batch_size(b) for b in sizes)
    if flush_chain:
        # GPipe without a label route runs no faster than S + (M - 1) * (largest step load)
        # (bound 5 of pipesl.cost.bounds): the exact solver minimised that over every plan
        step = seed
        search.floor = step.lower_bound_s
        search.counters["floor_dp_passes"] = step.counters.get("dp_passes", 0)
        if search.best is not None and search.floor < search.best[0] * (1 - _REL_TOL):
            # ... and no faster than S + (M - 1)(max forward + max backward) (split_floor)
            from pipesl.solvers.split_floor import gpipe_split_floor

            split, found = gpipe_split_floor(
                problem, sizes, search.best[0], deadline=deadline, budget=32,
                first=(step.micro_batch_size, seed.micro_batch_size))
            for plan in found:  # plans the floor's search met may beat the incumbent
                search.offer(plan)
            search.counters["split_floor_ms"] = int(1000 * (time.perf_counter() - started))
            search.floor = max(search.floor, min(split, search.best[0]))
    search.roots()
    proven = search.run()
    if search.best is None:
        raise InfeasibleError("no valid plan fits in memory")
    best_t, best_plan = search.best
    lower = best_t if proven else search.lower_bound()
    result = finish(problem, best_plan, "makespan", optimal=proven, lower_bound_s=lower,
                    started=started, status="optimal" if proven else "time_limit",
                    message="" if proven else (f"stopped before a proof; optimality gap "
                                               f"{(best_t - lower) / best_t:.2%}"),
                    counters=search.counters)
    return replace(result, objective_s=best_t, objective="makespan",
                   lower_bound_s=min(lower, best_t))


def run_makespan(problem: Problem, *, micro_batch_size: int | None = None,
              time_limit: float | None = None) -> SolveResult:
    sizes = None if micro_batch_size is None else [micro_batch_size]
    return solve_makespan(problem, sizes, time_limit=time_limit)
