"""Lower bounds on SPEC section 3's T = S + (M - 1) beta, for any plan, at a micro-batch size b.

What the exact planner (:mod:`pipesl.solvers.exact`) queues every b with before any work on
it. From the source's cut j — it runs layers 1..j (and must hold them), one of its own links
carries layer j's output, the rest runs no faster than the fastest other node:

* ``source_cut_sum``: ``S >= min_j [t_src(1..j) + least hop time of layer j + b (W_L - W_j) /
  max flops + 2 o]``;
* ``source_cut_beta``: ``beta >= min_j max(t_src(1..j), least hop load of layer j)``;
* ``every_layer_runs``: ``beta >= max_l min_c t_c(l..l)`` (every layer runs somewhere).

Each is tested against brute force on random small instances (tests/cost/test_analytic_bounds.py);
the makespan bounds built on them in tests/cost/test_makespan_bounds_named.py.
"""

from __future__ import annotations

import numpy as np

from pipesl.cost.model import num_micro_batches
from pipesl.cost.tables import CostTables
from pipesl.problem.types import Problem

__all__ = ["AnalyticBounds"]


class AnalyticBounds:
    """Cheap lower bounds on S and beta for any b of SPEC section 3's T = S + (M - 1) beta.

    Besides "every layer runs somewhere", both bounds look at the source's cut j: the source
    runs layers 1..j (it must fit), then (j < L) one of its own links carries layer j's output,
    and the rest of the model runs no faster than the fastest other node. With labels at the
    source, one of its links also carries layer L's output back.
    """

    def __init__(self, problem: Problem, tables: CostTables):
        net, tr = problem.network, problem.training
        self.tables = tables
        t = tables
        L = t.num_layers
        src = net.node_index[tr.source]
        compute = np.flatnonzero(t.can_compute)
        others = compute[compute != src]
        self.src = src
        self.layer_alpha = t.layer_alpha[compute]  # (C, L)
        self.layer_beta = t.compute_beta[compute][:, None]
        cut = np.arange(1, L + 1)
        self.src_alpha = t.stage_alpha(src, 1, cut)  # t_src(1..j) = alpha b + beta
        self.src_beta = t.compute_beta[src]
        self.src_state = t.state_factor * t.params[cut]
        self.src_acts = t.acts[cut]
        self.src_memory = t.memory[src]
        if len(others):
            self.rest_alpha = t.stage_alpha(others[:, None], cut + 1, L).min(axis=0)
            self.rest_beta = np.where(cut < L, t.compute_beta[others].min(), 0.0)
        else:
            self.rest_alpha = np.where(cut < L, np.inf, 0.0)
            self.rest_beta = np.zeros(L)
        incident = np.flatnonzero((t.link_u == src) | (t.link_v == src))
        self.inc_alpha = t.hop_alpha[incident]  # (I, L+1)
        self.inc_beta = t.hop_beta[incident][:, None]
        self.inc_share = t.load_share[incident][:, None]
        self.labels_back = tr.labels_at is not None and tr.labels_at == tr.source
        self.has_links = len(incident) > 0

    def _cut(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Per source cut j = 1..L: (least S, least beta); inf where the cut is impossible."""
        t = self.tables
        L = t.num_layers
        t_src = self.src_alpha * b + self.src_beta
        fits = self.src_state + float(t.window(b, 1)) * self.src_acts <= self.src_memory
        if self.has_links:
            hop = self.inc_alpha * b + self.inc_beta  # (I, L+1)
            hop_time = hop.min(axis=0)
            hop_load = (hop * self.inc_share).min(axis=0)
        else:
            hop_time = hop_load = np.full(L + 1, np.inf)
        inner = np.arange(1, L + 1) < L
        s = t_src + self.rest_alpha * b + self.rest_beta
        beta = t_src.copy()
        s = s + np.where(inner, hop_time[1:], 0.0)
        beta = np.maximum(beta, np.where(inner, hop_load[1:], 0.0))
        if self.labels_back:
            s = s + np.where(inner, hop_time[L], 0.0)
            beta = np.maximum(beta, np.where(inner, hop_load[L], 0.0))
        return np.where(fits, s, np.inf), np.where(fits, beta, np.inf)

    def sum_lb(self, b: int) -> float:
        """``source_cut_sum``: a lower bound on S, the first micro-batch's trip, at b."""
        return float(self._cut(b)[0].min())

    def single_layer_beta(self, b: int) -> float:
        """``every_layer_runs``: beta >= max_l min_c t_c(l..l) (every layer runs somewhere)."""
        return float((self.layer_alpha * b + self.layer_beta).min(axis=0).max())

    def source_cut_beta(self, b: int) -> float:
        """``source_cut_beta``: beta >= min_j max(t_src(1..j), least hop load of layer j)."""
        return float(self._cut(b)[1].min())

    def beta_lb(self, b: int) -> float:
        """A lower bound on beta, the largest resource load, at b (the larger of the two)."""
        return float(max(self.single_layer_beta(b), self.source_cut_beta(b)))

    def objective_lb(self, b: int) -> float:
        """``sum_lb(b) + (M - 1) beta_lb(b)``: what ``exact`` queues b with."""
        return self.sum_lb(b) + (num_micro_batches(self.tables.batch_size, b) - 1) \
            * self.beta_lb(b)
