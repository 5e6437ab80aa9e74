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

__all__ = ["RouteOracle"]

_CACHE_ENTRIES = 512


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

    def __init__(self, problem: Problem, tables: CostTables, b: int, origins: np.ndarray):
        self.tables = tables
        self.b = b
        self.n = len(problem.network.nodes)
        self.origins = np.asarray(origins, dtype=np.int64)
        self.shortest = problem.training.routing == "shortest"
        u, v = tables.link_u, tables.link_v
        self.src = np.concatenate((u, v))
        self.dst = np.concatenate((v, u))
        self.edge_link = np.concatenate((np.arange(len(u)), np.arange(len(u))))
        labels_at = problem.training.labels_at
        self.label_node = None if labels_at is None else problem.network.node_index[labels_at]
        self._dist_cache: OrderedDict[tuple[float, int], np.ndarray] = OrderedDict()
        self._label_cache: dict[int, np.ndarray] = {}
        self._hop_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.dijkstra_runs = 0
        self._hops: np.ndarray | None = None

    # ------------------------------------------------------------ weights

    def hop_times(self, layer: int) -> np.ndarray:
        """(E,) t = 2x of one hop over each link carrying layer ``layer``'s output."""
        return self._layer(layer)[0]

    def hop_loads(self, layer: int) -> np.ndarray:
        """(E,) bottleneck load of one such hop on its link (share_e * t)."""
        return self._layer(layer)[1]

    def _layer(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hit = self._hop_cache.get(layer)
        if hit is None:
            t = self.tables.hop_times(self.b, np.array([layer]))[:, 0]
            loads = t * self.tables.load_share
            hit = (t, loads, np.sort(loads))
            self._hop_cache[layer] = hit
        return hit

    def _allowed(self, layer: int, tau: float) -> tuple[np.ndarray, int]:
        """Mask of links admissible under tau, and its size (the cache signature)."""
        _, loads, ordered = self._layer(layer)
        count = int(np.searchsorted(ordered, tau, side="right"))
        return loads <= tau, count

    @property
    def hop_counts(self) -> np.ndarray:
        """(N, N) min-hop distances (inf where unreachable)."""
        if self._hops is None:
            g = self._graph(np.ones(len(self.tables.link_u)), np.ones(len(self.tables.link_u),
                                                                        dtype=bool))
            self._hops = shortest_path(g, method="D", unweighted=True, directed=False)
        return self._hops

    def _graph(self, weights: np.ndarray, allowed: np.ndarray) -> sp.csr_matrix:
        keep = np.concatenate((allowed, allowed))
        w = np.concatenate((weights, weights))[keep]
        return sp.csr_matrix((w, (self.src[keep], self.dst[keep])), shape=(self.n, self.n))

    # ------------------------------------------------------------ distances

    def distances(self, layer: int, tau: float = np.inf) -> np.ndarray:
        """(origins, N): cheapest route time from each origin to every node for layer ``layer``.

        ``routing: shortest`` restricts routes to min-hop paths (of the whole network).
        """
        allowed, count = self._allowed(layer, tau)
        key = (float(self.tables.out_bytes[layer]), count)
        hit = self._dist_cache.get(key)
        if hit is not None:
            self._dist_cache.move_to_end(key)
            return hit
        t = self.hop_times(layer)
        self.dijkstra_runs += 1
        if self.shortest:
            dist = self._dag_distances(self.origins, t, allowed)
        else:
            dist = dijkstra(self._graph(t, allowed), directed=True, indices=self.origins)
        dist.setflags(write=False)
        self._dist_cache[key] = dist
        if len(self._dist_cache) > _CACHE_ENTRIES:
            self._dist_cache.popitem(last=False)
        return dist

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
