"""Per micro-batch-size tables of the makespan search (:mod:`pipesl.solvers.makespan`).

Pass times and memory of every stage and hop at one b, routes in order of increasing
time, and the relaxed layered DP that bounds the undecided rest of a partial plan.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from pipesl import cost
from pipesl.cost import num_micro_batches
from pipesl.cost.bounds import Suffix
from pipesl.cost.steps import PipelineStep
from pipesl.problem.types import Problem

__all__ = ["PassTables"]


class PassTables:
    """Everything the search needs at one micro-batch size: pass times, memory, relaxed DP."""

    def __init__(self, problem: Problem, b: int, tables: cost.CostTables | None = None):
        """Read at b from ``tables`` (the problem's :class:`~pipesl.cost.CostTables`, built
        when not given): every time and byte figure is the cost model's."""
        net, tr = problem.network, problem.training
        t = cost.CostTables.from_problem(problem) if tables is None else tables
        self.tables = t
        self.problem = problem
        self.b = b
        self.m = num_micro_batches(tr.batch_size, b)
        L = t.num_layers
        self.L = L
        ids = [n.id for n in net.nodes]
        self.ids = ids
        self.index = net.node_index
        self.src = net.node_index[tr.source]
        self.label = None if tr.labels_at is None else net.node_index[tr.labels_at]
        self.compute = [int(i) for i in np.flatnonzero(t.can_compute)]
        self.memory = t.memory
        # f[c, i, j]: forward of layers i+1..j on c (i < j), inf elsewhere; fa, ga: their
        # seconds per sample (f = fa * b + overhead, as cost.Affine reads it)
        self.fa, self.ga = t.pass_alpha
        over = t.overhead[:, None, None]
        valid = np.triu(np.ones((L + 1, L + 1), dtype=bool), 1)[None] \
            & t.can_compute[:, None, None]
        self.f = np.where(valid, self.fa * b + over, np.inf)
        self.g = np.where(valid, self.ga * b + over, np.inf)
        self.resources = [cost.Resource("node", i) for i in ids]
        self._resources: dict[cost.Resource, cost.Resource] = {}
        self._compute_steps: dict[tuple[int, int, int, int],
                                  tuple[PipelineStep, float, float]] = {}
        self._hop_steps: dict[tuple[tuple[str, ...], int], tuple[
            tuple[PipelineStep, ...], tuple[float, ...], tuple[float, ...]]] = {}
        self.overhead = t.overhead
        self.state = t.span_state
        self.act = t.span_acts
        self.links = net.links
        self.out_bytes = t.out_bytes
        self.x = t.transfer_times(b)
        """(E, L+1): one-way transfer time of layer l's output on link e at b."""
        self.graph = net.graph
        self.shortest = tr.routing == "shortest"
        self._paths: dict[tuple[int, int, float], tuple[list[tuple[str, ...]],
                                                         Iterator[list[str]] | None]] = {}
        self._relax()

    # ---------------------------------------------------------------- memory
    def window(self, stage: int, k_total: int) -> float:
        """Samples of activations a stage must hold to be placed (SPEC memory rule; with K
        free, k_total = 0, the least any stage holds: the last one's)."""
        return float(self.tables.window(self.b, k_total - stage if k_total else 1))

    def fits(self, c: int, i: int, stage: int, k_total: int) -> np.ndarray:
        """Over j = 0..L: True where c can hold layers i+1..j as stage ``stage``."""
        need = self.state[i] + self.window(stage, k_total) * self.act[i]
        ok = need <= self.memory[c]
        ok[: i + 1] = False
        return ok

    # ---------------------------------------------------------------- hops
    def hop_weight(self, layer: int) -> dict[tuple[str, str], float]:
        x = self.x[:, layer]
        return {(e.source, e.target): float(x[i]) for i, e in enumerate(self.links)}

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

    def compute_step(self, c: int, i: int, j: int, stage: int
                     ) -> tuple[PipelineStep, float, float]:
        """The step of node c running layers i+1..j as compute stage ``stage``, and its
        forward and backward times at b (cached: the search meets it from many prefixes)."""
        key = (c, i, j, stage)
        got = self._compute_steps.get(key)
        if got is None:
            over = float(self.overhead[c])
            step = cost.compute_step(self.ids[c], i + 1, j,
                                     cost.Affine(float(self.fa[c, i, j]), over),
                                     cost.Affine(float(self.ga[c, i, j]), over), stage,
                                     self.resources[c])
            got = self._compute_steps[key] = (step, step.forward(self.b),
                                              step.backward(self.b))
        return got

    def hop_steps(self, route: tuple[str, ...], layer: int) -> tuple[
            tuple[PipelineStep, ...], tuple[float, ...], tuple[float, ...]]:
        """The hop steps of ``route`` carrying layer ``layer``'s output, and their forward
        and backward times at b (cached per route)."""
        key = (route, layer)
        got = self._hop_steps.get(key)
        if got is None:
            net = self.problem.network
            steps = []
            for u, v in itertools.pairwise(route):
                link = net.link_between(u, v)
                assert link is not None
                step = cost.hop_step(link, u, v, layer, float(self.out_bytes[layer]))
                # one Resource object per resource: dictionary lookups in the bounds then
                # meet the same object (identity) instead of comparing fields
                fr = self._resources.setdefault(step.forward_resource, step.forward_resource)
                br = self._resources.setdefault(step.backward_resource,
                                                step.backward_resource)
                steps.append(replace(step, forward_resource=fr, backward_resource=br))
            got = self._hop_steps[key] = (tuple(steps),
                                          tuple(s.forward(self.b) for s in steps),
                                          tuple(s.backward(self.b) for s in steps))
        return got

    def route_time(self, route: tuple[str, ...], layer: int) -> float:
        net = self.problem.network
        total = 0.0
        for u, v in itertools.pairwise(route):
            link = net.link_between(u, v)
            assert link is not None
            total += cost.transfer_time(link, float(self.out_bytes[layer]))(self.b)
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
        u, v = self.tables.link_u, self.tables.link_v
        done: dict[float, np.ndarray] = {}
        for j in range(L + 1):
            a = float(self.out_bytes[j])
            if a not in done:
                if len(u):
                    w = self.x[:, j]
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
        loads = self.tables.hop_loads(self.b)
        for e, load in enumerate(loads):
            for end in (u[e], v[e]):
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
            fw, bw = self.tables.pooled_pass_times(self.b, j, free)
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
