"""Shortest relay routes between compute nodes, for one micro-batch size.

The layered planner never materialises a decision graph with one edge per (hop, layer);
instead, for the output of layer l it asks this oracle for the cheapest route between every
pair of compute nodes: hop weight ``t_e(l) = 2 x_e(l)`` from :class:`pipesl.cost.CostTables`,
links whose per-hop bottleneck load ``share_e * t_e(l)`` exceeds the threshold tau removed.
Distances come from scipy's C Dijkstra (``routing: optimize``) or from a vectorised DP over
the min-hop DAG of each origin (``routing: shortest``), and are cached by the pair (bytes per
micro-batch, number of admissible links), so layers with equal activation sizes — most blocks of
real networks — share one computation.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra, shortest_path

from pipesl.cost import CostTables
from pipesl.problem.types import Problem

__all__ = ["RouteCache", "RouteOracle"]

_CACHE_ENTRIES = 512
_CACHE_BYTES = 48 * 2**20
"""Route-distance cache budget per micro-batch size."""


class RouteCache:
    """Route distances shared by the oracles of every b of one problem.

    Hop weights depend on b and the layer only through theta = b * out_bytes, so entries are
    keyed by (theta, admissible links, kind) and reused across micro-batch sizes. Least
    recently used entries go first once ``budget`` bytes are held.
    """

    def __init__(self, budget: int = _CACHE_BYTES):
        self.budget = budget
        self.held = 0
        self.entries: OrderedDict[tuple[float, int, str], np.ndarray] = OrderedDict()
        self.hits = 0

    def get(self, key: tuple[float, int, str]) -> np.ndarray | None:
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        return hit

    def put(self, key: tuple[float, int, str], value: np.ndarray) -> None:
        value.setflags(write=False)
        self.entries[key] = value
        self.held += value.nbytes
        while self.held > self.budget and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.held -= old.nbytes


class RouteOracle:
    """Cheapest routes for the activations of each layer at micro-batch size ``b``.

    Parameters
    ----------
    problem : Problem
    tables : CostTables
    b : int
        Micro-batch size.
    origins : ndarray of int
        Node indices that routes start from (the compute nodes).
    """

    def __init__(self, problem: Problem, tables: CostTables, b: int, origins: np.ndarray,
                 cache: RouteCache | None = None):
        self.tables = tables
        self.b = b
        self.n = len(problem.network.nodes)
        self.origins = np.asarray(origins, dtype=np.int64)
        self.shortest = problem.training.routing == "shortest"
        u, v = tables.link_u, tables.link_v
        self.src = np.concatenate((u, v))
        self.dst = np.concatenate((v, u))
        labels_at = problem.training.labels_at
        self.label_node = None if labels_at is None else problem.network.node_index[labels_at]
        # Hop times and loads of every link for every layer's output, once per b.
        self.times = tables.hop_times(b)  # (E, L+1)
        self.loads = self.times * tables.load_share[:, None]
        self._sorted_loads: np.ndarray | None = None
        self.num_links = len(u)
        self.cache = cache if cache is not None else RouteCache()
        # One CSR structure (directed edges sorted by source); Dijkstra runs rewrite its data.
        order = np.lexsort((self.dst, self.src))
        self._edge_link = np.concatenate((np.arange(len(u)), np.arange(len(u))))[order]
        indptr = np.zeros(self.n + 1, dtype=np.int32)
        np.cumsum(np.bincount(self.src, minlength=self.n), out=indptr[1:])
        self._csr = sp.csr_matrix((np.ones(len(order)), self.dst[order].astype(np.int32),
                                   indptr), shape=(self.n, self.n))
        self._label_cache: dict[int, np.ndarray] = {}
        self.dijkstra_runs = 0
        self._hops: np.ndarray | None = None

    # ------------------------------------------------------------ weights

    def hop_times(self, layer: int) -> np.ndarray:
        """(E,) t = 2x of one hop over each link carrying layer ``layer``'s output."""
        return self.times[:, layer]

    def hop_loads(self, layer: int) -> np.ndarray:
        """(E,) bottleneck load of one such hop on its link (share_e * t)."""
        return self.loads[:, layer]

    def counts(self, tau: float) -> np.ndarray:
        """(L+1,) number of links admissible under tau for each layer (the cache signature)."""
        if tau == np.inf:
            return np.full(self.times.shape[1], self.num_links)
        if self._sorted_loads is None:
            self._sorted_loads = np.sort(self.loads, axis=0)
        return np.count_nonzero(self._sorted_loads <= tau, axis=0)

    def _allowed(self, layer: int, tau: float) -> tuple[np.ndarray, int]:
        """Mask of links admissible under tau, and its size."""
        mask = self.loads[:, layer] <= tau
        return mask, int(np.count_nonzero(mask))

    @property
    def hop_counts(self) -> np.ndarray:
        """(N, N) min-hop distances (inf where unreachable)."""
        if self._hops is None:
            g = self._graph(np.ones(len(self.tables.link_u)), np.ones(len(self.tables.link_u),
                                                                        dtype=bool))
            self._hops = shortest_path(g, method="D", unweighted=True, directed=False)
        return self._hops

    def _graph(self, weights: np.ndarray, allowed: np.ndarray) -> sp.csr_matrix:
        """The network with hop weights; inadmissible links weigh +inf (no route uses them)."""
        self._csr.data = np.where(allowed, weights, np.inf)[self._edge_link]
        return self._csr

    # ------------------------------------------------------------ distances

    def distances(self, layer: int, tau: float = np.inf, count: int | None = None
                  ) -> np.ndarray:
        """(origins, N): cheapest route time from each origin to every node for layer ``layer``.

        ``routing: shortest`` restricts routes to min-hop paths (of the whole network).
        ``count`` (from :meth:`counts`) saves recounting the admissible links.
        """
        if count is None:
            count = int(np.count_nonzero(self.loads[:, layer] <= tau))
        key = (self.b * float(self.tables.out_bytes[layer]), count, "dist")
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        t = self.times[:, layer]
        allowed = self.loads[:, layer] <= tau
        self.dijkstra_runs += 1
        if self.shortest:
            dist = self._dag_distances(self.origins, t, allowed)
        else:
            dist = dijkstra(self._graph(t, allowed), directed=True, indices=self.origins)
        self.cache.put(key, dist)
        return dist

    def pair_distances(self, layer: int, tau: float, count: int) -> np.ndarray:
        """(origins, origins): route times between origins, +inf on the diagonal (a route
        joins two distinct nodes)."""
        key = (self.b * float(self.tables.out_bytes[layer]), count, "pairs")
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        pairs = self.distances(layer, tau, count)[:, self.origins].copy()
        np.fill_diagonal(pairs, np.inf)
        self.cache.put(key, pairs)
        return pairs

    def _dag_distances(self, origins: np.ndarray, t: np.ndarray, allowed: np.ndarray
                       ) -> np.ndarray:
        """Cheapest min-hop routes from each origin (vectorised over origins, by hop level)."""
        hops = self.hop_counts[origins]  # (O, N)
        dist = np.full((len(origins), self.n), np.inf)
        dist[np.arange(len(origins)), origins] = 0.0
        w = np.concatenate((t, t))
        keep = np.concatenate((allowed, allowed))
        src, dst, w = self.src[keep], self.dst[keep], w[keep]
        order = np.argsort(dst, kind="stable")
        src, dst, w = src[order], dst[order], w[order]
        if len(dst) == 0:
            return dist
        starts = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]])
        targets = dst[starts]
        on_dag = hops[:, dst] == hops[:, src] + 1  # (O, 2E)
        finite = np.isfinite(hops)
        max_level = int(hops[finite].max()) if finite.any() else 0
        for level in range(1, max_level + 1):
            step = on_dag & (hops[:, dst] == level)
            if not step.any():
                continue
            cand = np.where(step, dist[:, src] + w, np.inf)
            best = np.minimum.reduceat(cand, starts, axis=1)
            dist[:, targets] = np.minimum(dist[:, targets], best)
        return dist

    def label_distances(self, tau: float = np.inf) -> np.ndarray:
        """(N,) cheapest route time from every node to the label node for layer L's output."""
        assert self.label_node is not None
        layer = self.tables.num_layers
        allowed, count = self._allowed(layer, tau)
        hit = self._label_cache.get(count)
        if hit is not None:
            return hit
        t = self.hop_times(layer)
        self.dijkstra_runs += 1
        origin = np.array([self.label_node])
        if self.shortest:
            dist = self._dag_distances(origin, t, allowed)[0]
        else:
            dist = dijkstra(self._graph(t, allowed), directed=True, indices=origin)[0]
        dist.setflags(write=False)
        self._label_cache[count] = dist
        return dist

    # ------------------------------------------------------------ paths

    def path(self, layer: int, start: int, end: int, tau: float = np.inf) -> list[int]:
        """One cheapest admissible route start -> end (node indices, ends included)."""
        allowed, _ = self._allowed(layer, tau)
        t = self.hop_times(layer)
        if self.shortest:
            return self._dag_path(start, end, t, allowed)
        _, pred = dijkstra(self._graph(t, allowed), directed=True, indices=start,
                           return_predecessors=True)
        route = [end]
        while route[-1] != start:
            p = int(pred[route[-1]])
            if p < 0:
                raise RuntimeError(f"no admissible route {start} -> {end}")  # internal
            route.append(p)
        return route[::-1]

    def _dag_path(self, start: int, end: int, t: np.ndarray, allowed: np.ndarray) -> list[int]:
        dist = self._dag_distances(np.array([start]), t, allowed)[0]
        hops = self.hop_counts[start]
        w = np.concatenate((t, t))
        keep = np.concatenate((allowed, allowed))
        route = [end]
        while route[-1] != start:
            y = route[-1]
            into = keep & (self.dst == y) & (hops[self.src] == hops[y] - 1)
            cand = np.where(into, dist[self.src] + w, np.inf)
            k = int(np.argmin(cand))
            if not np.isfinite(cand[k]):
                raise RuntimeError(f"no admissible min-hop route {start} -> {end}")  # internal
            route.append(int(self.src[k]))
        return route[::-1]

    def label_path(self, start: int, tau: float = np.inf) -> list[int]:
        """One cheapest admissible route from ``start`` to the label node."""
        assert self.label_node is not None
        if start == self.label_node:
            return [start]
        return self.path(self.tables.num_layers, start, self.label_node, tau)
