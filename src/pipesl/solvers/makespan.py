"""Schedule-true planning: the plan and b of least *simulated* makespan, with a certificate.

What a user's iteration takes is the makespan of the chosen schedule (SPEC section 5), not
SPEC section 3's analytic T, and T is not even a lower bound of it (1F1B and label routes can
beat it). :func:`solve_makespan` minimises the makespan itself:

1. **Incumbent.** The analytic optimum (:func:`pipesl.solvers.exact.solve_exact`), with its
   placement simulated at every micro-batch size that fits, gives a first plan and its
   makespan U. For GPipe without a label route, the exact solver also minimises
   ``S + (M - 1) * (largest load of one step)`` (``per_step=True``: shared links not summed),
   a lower bound on every plan's makespan: when it reaches U, U is proven at once.
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

Only the smallest b of each M is searched: every pass time is non-decreasing in b, so every
bound is, and the tests check on random instances that the makespan is too.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from pipesl import cost
from pipesl.cost import num_micro_batches
from pipesl.cost.bounds import BoundStep, Suffix, gpipe_closed_form, pipeline_bound
from pipesl.exceptions import InfeasibleError
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.result import SolveResult, finish

__all__ = ["plan_makespan", "solve_makespan"]

_REL_TOL = 1e-9


def plan_makespan(problem: Problem, plan: Plan) -> float:
    """The simulated makespan of ``plan`` under ``training.schedule`` (what ``simulate`` says).

    GPipe's closed form where it is exact (:func:`pipesl.cost.bounds.gpipe_closed_form`),
    otherwise one run of the discrete-event simulator on the schedule's table.
    """
    if problem.training.schedule == "gpipe":
        closed = gpipe_closed_form(problem, plan)
        if closed is not None:
            return closed
    from pipesl.schedules import plan_table
    from pipesl.sim import plan_steps, run_pipeline

    table = plan_table(problem, plan)
    sizes = [plan.micro_batch_size] * table.num_micro_batches
    return run_pipeline(plan_steps(problem, plan), table, sizes).makespan_s


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
    steps: tuple[BoundStep, ...]
    stages: tuple[Stage, ...]
    routes: tuple[tuple[str, ...], ...]
    used: frozenset[int]
    target: int = -1
    index: int = 0
    label: bool = False
    exact: bool = False
    """Route generator: True when its bound used route ``index``'s own time."""


class _PerB:
    """Everything the search needs at one micro-batch size: pass times, memory, relaxed DP."""

    def __init__(self, problem: Problem, b: int):
        net, model, tr = problem.network, problem.model, problem.training
        self.problem = problem
        self.b = b
        self.m = num_micro_batches(tr.batch_size, b)
        L = model.num_layers
        self.L = L
        ids = [n.id for n in net.nodes]
        self.ids = ids
        self.index = net.node_index
        self.src = net.node_index[tr.source]
        self.label = None if tr.labels_at is None else net.node_index[tr.labels_at]
        fw = np.concatenate(([0.0], np.cumsum([x.fwd_flops for x in model.layers])))
        bw = np.concatenate(([0.0], np.cumsum([x.bwd_flops for x in model.layers])))
        self.params = np.concatenate(([0.0], np.cumsum([x.param_bytes for x in model.layers])))
        self.acts = np.concatenate(([0.0], np.cumsum([x.act_bytes for x in model.layers])))
        self.compute = [i for i, n in enumerate(net.nodes) if n.can_compute]
        n_nodes = len(ids)
        inv = np.array([1.0 / n.flops if n.can_compute else 0.0 for n in net.nodes])
        over = np.array([n.overhead for n in net.nodes])
        self.memory = np.array([n.memory for n in net.nodes])
        # f[c, i, j]: forward of layers i+1..j on c (i < j), inf elsewhere
        diff_f = fw[None, :] - fw[:, None]
        diff_b = bw[None, :] - bw[:, None]
        upper = np.triu(np.ones((L + 1, L + 1), dtype=bool), 1)
        self.f = np.full((n_nodes, L + 1, L + 1), np.inf)
        self.g = np.full((n_nodes, L + 1, L + 1), np.inf)
        for c in self.compute:
            self.f[c][upper] = (b * diff_f * inv[c] + over[c])[upper]
            self.g[c][upper] = (b * diff_b * inv[c] + over[c])[upper]
        self.fw, self.bw = fw, bw
        self.flops = np.array([n.flops for n in net.nodes])
        self.overhead = over
        self.state = tr.state_factor * (self.params[None, :] - self.params[:, None])
        self.act = self.acts[None, :] - self.acts[:, None]
        self.schedule = tr.schedule
        self.batch = tr.batch_size
        # hop x per link and layer
        self.links = net.links
        self.out_bytes = [model.input_bytes] + [x.out_bytes for x in model.layers]
        self.graph = net.graph
        self.shortest = tr.routing == "shortest"
        self._paths: dict[tuple[int, int, float], tuple[list[tuple[str, ...]],
                                                         Iterator[list[str]] | None]] = {}
        self._relax()

    # ---------------------------------------------------------------- memory
    def window(self, stage: int, k_total: int) -> float:
        """Samples of activations a stage must hold to be placed (SPEC memory rule)."""
        if self.schedule == "gpipe":
            return float(self.batch)
        if self.schedule == "1f1b" and k_total:
            return float(min(self.m, k_total - stage) * self.b)
        return float(self.b)

    def fits(self, c: int, i: int, stage: int, k_total: int) -> np.ndarray:
        """Over j = 0..L: True where c can hold layers i+1..j as stage ``stage``."""
        need = self.state[i] + self.window(stage, k_total) * self.act[i]
        ok = need <= self.memory[c]
        ok[: i + 1] = False
        return ok

    # ---------------------------------------------------------------- hops
    def x(self, link_index: int, layer: int) -> float:
        e = self.links[link_index]
        return 8.0 * self.b * self.out_bytes[layer] / e.bandwidth + e.latency

    def hop_weight(self, layer: int) -> dict[tuple[str, str], float]:
        a = self.out_bytes[layer]
        return {(e.source, e.target): 8.0 * self.b * a / e.bandwidth + e.latency
                for e in self.links}

    def path(self, u: int, v: int, layer: int, i: int) -> tuple[str, ...] | None:
        """The i-th route from u to v for layer ``layer``'s output, by increasing time."""
        key = (u, v, float(self.out_bytes[layer]))
        got = self._paths.get(key)
        if got is None:
            su, sv = self.ids[u], self.ids[v]
            if u == v:
                got = ([(su,)], None)
            elif not nx.has_path(self.graph, su, sv):
                got = ([], None)
            else:
                w = self.hop_weight(layer)

                def weight(a: str, c: str, _d: object) -> float:
                    return w[(a, c)] if (a, c) in w else w[(c, a)]

                if self.shortest:
                    paths = [tuple(p) for p in nx.all_shortest_paths(self.graph, su, sv)]
                    paths.sort(key=lambda p: sum(weight(a, c, None)
                                                 for a, c in itertools.pairwise(p)))
                    got = (paths, None)
                else:
                    got = ([], nx.shortest_simple_paths(self.graph, su, sv, weight=weight))
            self._paths[key] = got
        paths, gen = got
        while gen is not None and len(paths) <= i:
            nxt = next(gen, None)
            if nxt is None:
                gen = None
                self._paths[key] = (paths, None)
            else:
                paths.append(tuple(nxt))
        return paths[i] if i < len(paths) else None

    def hop_steps(self, route: tuple[str, ...], layer: int, stage: int) -> list[BoundStep]:
        out = []
        net = self.problem.network
        for u, v in itertools.pairwise(route):
            link = net.link_between(u, v)
            assert link is not None
            x = cost.transfer_time(link, self.out_bytes[layer])(self.b)
            if link.duplex == "full":
                fr = cost.resource_name("link", u, v, True)
                br = cost.resource_name("link", v, u, True)
            else:
                fr = br = cost.resource_name("link", link.source, link.target)
            out.append(BoundStep(x, x, fr, br, stage, False))
        return out

    def route_time(self, route: tuple[str, ...], layer: int) -> float:
        net = self.problem.network
        total = 0.0
        for u, v in itertools.pairwise(route):
            link = net.link_between(u, v)
            assert link is not None
            total += cost.transfer_time(link, self.out_bytes[layer])(self.b)
        return total

    # ---------------------------------------------------------------- relaxation
    def _relax(self) -> None:
        """Least forward / backward time of the rest from every (layer, node), distinct
        nodes and link sharing ignored (a lower bound)."""
        L, n_nodes = self.L, len(self.ids)
        later = [c for c in self.compute if c != self.src]
        fit_any = np.zeros((n_nodes, L + 1, L + 1), dtype=bool)
        # the least window any schedule needs (1F1B: its last stage's)
        need = self.state + self.window(1, 0) * self.act
        upper = np.triu(np.ones((L + 1, L + 1), dtype=bool), 1)
        for c in later:
            fit_any[c] = (need <= self.memory[c]) & upper
        f = np.where(fit_any, self.f, np.inf)
        g = np.where(fit_any, self.g, np.inf)
        # one-way route distances per layer
        dist = np.full((L + 1, n_nodes, n_nodes), np.inf)
        u = np.array([self.index[e.source] for e in self.links], dtype=np.int64)
        v = np.array([self.index[e.target] for e in self.links], dtype=np.int64)
        inv_bw = np.array([8.0 / e.bandwidth for e in self.links])
        lat = np.array([e.latency for e in self.links])
        done: dict[float, np.ndarray] = {}
        for j in range(L + 1):
            a = float(self.out_bytes[j])
            if a not in done:
                if len(u):
                    w = self.b * a * inv_bw + lat
                    mat = csr_matrix((np.concatenate((w, w)), (np.concatenate((u, v)),
                                                               np.concatenate((v, u)))),
                                     shape=(n_nodes, n_nodes))
                    done[a] = dijkstra(mat, directed=True)
                else:
                    d = np.full((n_nodes, n_nodes), np.inf)
                    np.fill_diagonal(d, 0.0)
                    done[a] = d
            dist[j] = done[a]
        self.dist = dist
        # incident[j, n]: least load one hop leaving n with layer j's output puts on a resource
        incident = np.full((L + 1, n_nodes), np.inf)
        out_b = np.asarray(self.out_bytes, dtype=float)
        for e in self.links:
            share = 1.0 if e.duplex == "full" else 2.0
            load = share * (8.0 * self.b * out_b / e.bandwidth + e.latency)
            for end in (self.index[e.source], self.index[e.target]):
                incident[:, end] = np.minimum(incident[:, end], load)
        self.incident = np.where(np.isfinite(incident), incident, 0.0)
        cidx = np.array(self.compute, dtype=np.int64)  # the DP runs over compute nodes
        lab = (np.zeros(len(cidx)) if self.label is None else dist[L][cidx, self.label])
        dcc = dist[:, cidx][:, :, cidx].copy()
        for j in range(L + 1):
            np.fill_diagonal(dcc[j], np.inf)
        # placed[j, n]: rest after a stage ended at n with layer j; arrived[j, m]: rest after
        # layer j's output reached m, which computes next.
        out = {}
        for name, t, with_label in (("F", f, True), ("G", g, True), ("Fc", f, False),
                                    ("Gc", g, False)):
            tc = t[cidx]
            placed_c = np.full((L + 1, len(cidx)), np.inf)
            arrived_c = np.full((L + 1, len(cidx)), np.inf)
            placed_c[L] = lab if with_label else 0.0
            for j in range(L - 1, -1, -1):
                arrived_c[j] = (tc[:, j, j + 1:] + placed_c[j + 1:].T).min(axis=1)
                placed_c[j] = (dcc[j] + arrived_c[j][None, :]).min(axis=1)
            placed = np.full((L + 1, n_nodes), np.inf)
            arrived = np.full((L + 1, n_nodes), np.inf)
            placed[:, cidx] = placed_c
            arrived[:, cidx] = arrived_c
            out[name] = (placed, arrived)
        # the same relaxation minimising the largest later compute step instead of the sum
        # (a memory-bound model must be cut into stages no smaller than what fits)
        reach = np.isfinite(dcc)
        for name, t in (("mF", f), ("mG", g), ("mT", f + g)):
            tc = t[cidx]
            placed_c = np.full((L + 1, len(cidx)), np.inf)
            arrived_c = np.full((L + 1, len(cidx)), np.inf)
            placed_c[L] = 0.0
            for j in range(L - 1, -1, -1):
                arrived_c[j] = np.maximum(tc[:, j, j + 1:], placed_c[j + 1:].T).min(axis=1)
                placed_c[j] = np.where(reach[j], arrived_c[j][None, :], np.inf).min(axis=1)
            placed = np.full((L + 1, n_nodes), np.inf)
            arrived = np.full((L + 1, n_nodes), np.inf)
            placed[:, cidx] = placed_c
            arrived[:, cidx] = arrived_c
            out[name] = (placed, arrived)
        self.rest = out
        # least single-layer times of the layers after j (some later step holds each)
        t1 = np.full((L + 1,), 0.0)
        f1 = np.full((L + 1,), 0.0)
        g1 = np.full((L + 1,), 0.0)
        if later:
            idx = np.arange(L)
            one_f = np.array([[self.f[c, i, i + 1] for i in idx] for c in later]).min(axis=0)
            one_g = np.array([[self.g[c, i, i + 1] for i in idx] for c in later]).min(axis=0)
            for j in range(L):
                t1[j] = (one_f[j:] + one_g[j:]).max()
                f1[j] = one_f[j:].max()
                g1[j] = one_g[j:].max()
        self.step_t, self.step_f, self.step_g = t1, f1, g1

    def _steps(self, j: int, used: frozenset[int], hop_from: tuple[int, ...],
               at: tuple[int, int] | None = None) -> tuple[float, float, float]:
        """Least (t, f, g) that some later step must reach: one of the layers after j alone
        on its fastest node; the rest of the model split over all unused nodes as evenly as
        their speeds allow (some stage then takes at least its share); the least largest
        later stage of the min-max relaxation from ``at`` = (0 placed | 1 arrived, node);
        and the hop that must leave each node of ``hop_from`` with layer j's output (its
        busiest resource)."""
        if j >= self.L:
            return 0.0, 0.0, 0.0
        t, f, g = float(self.step_t[j]), float(self.step_f[j]), float(self.step_g[j])
        if at is not None:
            r = self.rest
            kind, node = at
            t = max(t, float(r["mT"][kind][j, node]))
            f = max(f, float(r["mF"][kind][j, node]))
            g = max(g, float(r["mG"][kind][j, node]))
        free = [c for c in self.compute if c not in used and c != self.src]
        if free:
            speed = float(sum(self.flops[c] for c in free))
            over = float(min(self.overhead[c] for c in free))
            fw = self.b * (self.fw[self.L] - self.fw[j]) / speed + over
            bw = self.b * (self.bw[self.L] - self.bw[j]) / speed + over
            t, f, g = max(t, fw + bw), max(f, fw), max(g, bw)
        for n in hop_from:
            t = max(t, float(self.incident[j, n]))
        return t, f, g

    def suffix_placed(self, j: int, n: int, used: frozenset[int]) -> Suffix:
        r = self.rest
        if j == self.L:
            lab = r["F"][0][j, n]
            return Suffix(lab, lab, 0.0, 0.0)
        t, f, g = self._steps(j, used, (n,), (0, n))
        return Suffix(r["F"][0][j, n], r["G"][0][j, n], r["Fc"][0][j, n], r["Gc"][0][j, n],
                      t, f, g)

    def suffix_arrived(self, j: int, m: int, used: frozenset[int], extra: float = 0.0,
                       hop_from: tuple[int, ...] = ()) -> Suffix:
        r = self.rest
        t, f, g = self._steps(j, used, hop_from, (1, m))
        return Suffix(r["F"][1][j, m] + extra, r["G"][1][j, m] + extra,
                      r["Fc"][1][j, m] + extra, r["Gc"][1][j, m] + extra, t, f, g)


class _Search:
    def __init__(self, problem: Problem, sizes: list[int], deadline: float | None):
        self.problem = problem
        self.schedule = problem.training.schedule
        self.deadline = deadline
        self.sizes = sizes
        self.per_b: dict[int, _PerB] = {}
        """Built when the search first reaches b (its root's cheap bound is below U)."""
        self.best: tuple[float, Plan] | None = None
        self.floor = 0.0
        """A lower bound on every plan's makespan (GPipe without labels: the per-step
        analytic optimum)."""
        self.heap: list[tuple[float, int, _State]] = []
        self.seq = itertools.count()
        self.counters = {"states": 0, "pushed": 0, "simulated": 0, "closed_form": 0,
                         "routes": 0, "b_values": len(sizes)}

    # ---------------------------------------------------------------- bounds
    def windows(self, pb: _PerB, stages: tuple[Stage, ...], k_total: int) -> tuple[
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
        return pipeline_bound(state.steps, pb.m, w, ch, flush, to_last, suffix)

    def push(self, value: float, state: _State) -> None:
        value = max(value, self.floor)
        if self.best is not None and value >= self.best[0] * (1 - _REL_TOL):
            return
        self.counters["pushed"] += 1
        heapq.heappush(self.heap, (value, next(self.seq), state))

    def offer(self, plan: Plan) -> None:
        problem = self.problem
        if not cost.feasible_micro_batch_sizes(problem, plan)[plan.micro_batch_size - 1]:
            return
        if self.schedule == "gpipe" and gpipe_closed_form(problem, plan) is not None:
            self.counters["closed_form"] += 1
        else:
            self.counters["simulated"] += 1
        t = plan_makespan(problem, plan)
        if self.best is None or t < self.best[0]:
            self.best = (t, plan)

    # ---------------------------------------------------------------- expansion
    def roots(self) -> None:
        """One root per b, bounded by ``max(S, M beta)`` from the exact solver's cheap bounds
        (the trip and the busiest resource) — for GPipe without a label route by
        ``S + (M - 1) beta`` (bound 5 of :mod:`pipesl.cost.bounds`: the flush makes every
        step's ``sum t + (M - 1) t_p`` a bound, and the cheap beta bounds one step's time) —
        so that b's tables are built only when the search reaches it."""
        from pipesl.cost import CostTables
        from pipesl.cost.analytic_bounds import AnalyticBounds

        problem = self.problem
        cheap = AnalyticBounds(problem, CostTables.from_problem(problem))
        flush_chain = self.schedule == "gpipe" and problem.training.labels_at is None
        for b in self.sizes:
            m = num_micro_batches(problem.training.batch_size, b)
            value = max(cheap.sum_lb(b), m * cheap.beta_lb(b))
            if flush_chain:  # GPipe without labels: S + (M - 1) t_p for every step p
                value = max(value, cheap.sum_lb(b) + (m - 1) * cheap.beta_lb(b))
            if np.isfinite(value):
                self.push(value, _State(3, b, 0, -1, 0, (), (), (), frozenset()))

    def start(self, b: int) -> None:
        """b's tables, and its first stages (for 1F1B, one search per number of stages K)."""
        pb = self.per_b[b] = _PerB(self.problem, b)
        L = pb.L
        ks = range(1, min(L, len(pb.compute)) + 1) if self.schedule == "1f1b" else [0]
        for k_total in ks:
            self.place(pb, k_total, (), (), (), frozenset(), pb.src, 0)

    def place(self, pb: _PerB, k_total: int, steps: tuple[BoundStep, ...],
              stages: tuple[Stage, ...], routes: tuple[tuple[str, ...], ...],
              used: frozenset[int], node: int, layer: int) -> None:
        """Children of 'node computes next after ``layer``': one per last layer."""
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
            step = BoundStep(float(pb.f[node, layer, j]), float(pb.g[node, layer, j]),
                             cost.resource_name("node", nid), cost.resource_name("node", nid),
                             k, True)
            state = _State(0, pb.b, k_total, node, j, (*steps, step), (*stages, st), routes,
                           used | {node})
            if j == L and pb.label is None:
                self.offer(Plan(state.stages, routes, pb.b, None))
                continue
            self.push(self.bound(state, pb.suffix_placed(j, node, state.used)), state)

    def expand(self, state: _State) -> None:
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
            hops = tuple(pb.hop_steps(route, state.layer, len(state.stages) - 1))
            if state.label:
                plan = Plan(state.stages, state.routes, pb.b, route)
                self.offer(plan)
                return
            arrived = replace(state, kind=2, node=state.target, steps=state.steps + hops,
                              routes=(*state.routes, route), target=-1, index=0)
            self.push(self.bound(arrived, pb.suffix_arrived(state.layer, state.target,
                                                            arrived.used)), arrived)
            return
        self.place(pb, state.k_total, state.steps, state.stages, state.routes, state.used,
                   state.node, state.layer)

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
    seed = solve_exact(problem, sizes, time_limit=time_limit)  # raises when infeasible
    search = _Search(problem, sizes, deadline)
    for b in sizes:
        search.offer(seed.plan.with_micro_batch_size(b))
    if tr.schedule == "gpipe" and tr.labels_at is None:
        # GPipe without a label route runs no faster than S + (M - 1) * (largest step load)
        # (bound 5 of pipesl.cost.bounds): the exact solver minimises that over every plan
        left = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
        step = solve_exact(problem, sizes, time_limit=left, per_step=True)
        search.floor = step.lower_bound_s
        search.counters["floor_dp_passes"] = step.counters.get("dp_passes", 0)
        if search.best is not None and search.floor < search.best[0] * (1 - _REL_TOL):
            # ... and no faster than S + (M - 1)(max forward + max backward) (split_floor)
            from pipesl.solvers.split_floor import gpipe_split_floor

            split, found = gpipe_split_floor(problem, sizes, search.best[0], deadline=deadline,
                                             budget=32)
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
