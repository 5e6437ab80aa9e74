"""The cost model of :mod:`pipesl.cost.model` as numpy arrays, for the solvers' hot paths.

Same formulas (SPEC section 3), vectorised with prefix sums over layers so that a stage's
FLOPs, parameters and activations are differences of two array entries.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pipesl.cost.model import (
    Affine,
    hop_seconds,
    num_micro_batches,
    one_way_seconds,
    transfer_seconds_per_sample,
)
from pipesl.problem.types import Problem

__all__ = ["CostTables", "tables_for"]

_TABLES: dict[int, tuple[weakref.ref[Problem], CostTables]] = {}


def tables_for(problem: Problem) -> CostTables:
    """The :class:`CostTables` of ``problem``, built once per problem object (problems are
    immutable) and dropped with it; the scalar cost API (:func:`pipesl.cost.compute_time`,
    :func:`pipesl.cost.plan_steps`) reads its stage times from them."""
    key = id(problem)
    hit = _TABLES.get(key)
    if hit is not None and hit[0]() is problem:
        return hit[1]
    tables = CostTables.from_problem(problem)

    def drop(ref: weakref.ref[Problem], key: int = key) -> None:
        if _TABLES.get(key, (None,))[0] is ref:
            del _TABLES[key]

    _TABLES[key] = (weakref.ref(problem, drop), tables)
    return tables

@dataclass(frozen=True, eq=False)
class CostTables:
    """The formulas above as numpy arrays, for the solvers' hot paths.

    Layers are indexed 0..L where index l means "the output of layer l" (0 = raw input), so
    a stage running layers i..j (1-based) costs ``work[j] - work[i - 1]``. Nodes and links
    follow the order of the problem's network.
    """

    work: np.ndarray
    """(L+1,) prefix sums of fwd_flops + bwd_flops per sample."""
    fwd_work: np.ndarray
    """(L+1,) prefix sums of fwd_flops per sample (the forward pass alone)."""
    bwd_work: np.ndarray
    """(L+1,) prefix sums of bwd_flops per sample (the backward pass alone)."""
    params: np.ndarray
    """(L+1,) prefix sums of param_bytes."""
    acts: np.ndarray
    """(L+1,) prefix sums of act_bytes per sample."""
    out_bytes: np.ndarray
    """(L+1,) bytes leaving layer l per sample (index 0: input_bytes)."""
    inv_flops: np.ndarray
    """(N,) 1 / flops, 0 where the node cannot compute."""
    flops: np.ndarray
    """(N,) FLOP/s (0 where the node cannot compute)."""
    overhead: np.ndarray
    """(N,) per-pass overhead o_n."""
    memory: np.ndarray
    """(N,) bytes available."""
    can_compute: np.ndarray
    """(N,) bool."""
    link_u: np.ndarray
    """(E,) index of each link's ``source``."""
    link_v: np.ndarray
    """(E,) index of each link's ``target``."""
    inv_bandwidth: np.ndarray
    """(E,) 1 / bandwidth (s per bit)."""
    bandwidth: np.ndarray
    """(E,) bit/s."""
    latency: np.ndarray
    """(E,) d_e."""
    load_share: np.ndarray
    """(E,) load on the busiest resource of a link per unit of hop time t = 2x: 1 for a
    half-duplex link (one resource carries 2x), 0.5 for a full-duplex link (each direction
    carries x)."""
    batch_size: int
    state_factor: float
    schedule: str

    @classmethod
    def from_problem(cls, problem: Problem) -> CostTables:
        """Build the tables of ``problem``."""
        model, net, tr = problem.model, problem.network, problem.training

        def prefix(values: list[float]) -> np.ndarray:
            return np.concatenate(([0.0], np.cumsum(np.asarray(values, dtype=float))))

        flops = np.array([n.flops for n in net.nodes], dtype=float)
        can = np.array([n.can_compute for n in net.nodes], dtype=bool)
        idx = net.node_index
        return cls(
            work=prefix([x.fwd_flops + x.bwd_flops for x in model.layers]),
            fwd_work=prefix([x.fwd_flops for x in model.layers]),
            bwd_work=prefix([x.bwd_flops for x in model.layers]),
            params=prefix([x.param_bytes for x in model.layers]),
            acts=prefix([x.act_bytes for x in model.layers]),
            out_bytes=np.array([model.input_bytes] + [x.out_bytes for x in model.layers]),
            inv_flops=np.where(can, 1.0 / np.where(flops > 0, flops, 1.0), 0.0),
            flops=np.where(can, flops, 0.0),
            overhead=np.array([n.overhead for n in net.nodes], dtype=float),
            memory=np.array([n.memory for n in net.nodes], dtype=float),
            can_compute=can,
            link_u=np.array([idx[e.source] for e in net.links], dtype=np.int64),
            link_v=np.array([idx[e.target] for e in net.links], dtype=np.int64),
            inv_bandwidth=np.array([1.0 / e.bandwidth for e in net.links], dtype=float),
            bandwidth=np.array([e.bandwidth for e in net.links], dtype=float),
            latency=np.array([e.latency for e in net.links], dtype=float),
            load_share=np.array([0.5 if e.duplex == "full" else 1.0 for e in net.links]),
            batch_size=tr.batch_size,
            state_factor=tr.state_factor,
            schedule=tr.schedule,
        )

    # ---- the per-sample (alpha) and fixed (beta) parts of every stage time: t = alpha b + beta

    @cached_property
    def layer_alpha(self) -> np.ndarray:
        """(N, L): seconds per sample of node n running layer l alone (0 where it cannot)."""
        return np.outer(self.inv_flops, np.diff(self.work))

    @cached_property
    def compute_beta(self) -> np.ndarray:
        """(N,): fixed seconds of any compute stage on node n (one forward, one backward)."""
        return 2.0 * self.overhead

    def stage_alpha(self, nodes: int | np.ndarray, first: int | np.ndarray,
                    last: int | np.ndarray) -> np.ndarray:
        """Seconds per sample of ``nodes`` running layers first..last (broadcast)."""
        return (self.work[last] - self.work[np.asarray(first) - 1]) * self.inv_flops[nodes]

    @cached_property
    def hop_alpha(self) -> np.ndarray:
        """(E, L+1): seconds per sample of a hop (t = 2x) on link e carrying layer l's output."""
        return 2.0 * self.transfer_alpha

    @cached_property
    def hop_beta(self) -> np.ndarray:
        """(E,): fixed seconds of a hop (t = 2x) on link e."""
        return 2.0 * self.latency

    @cached_property
    def pass_alpha(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, L+1, L+1) twice: seconds per sample of the forward and of the backward pass of
        node n running layers i+1..j (meaningful where i < j; 0 elsewhere and on nodes that
        cannot compute). Each pass also takes the fixed :attr:`overhead` o_n:
        ``forward = alpha_f * b + o_n`` (:func:`pipesl.cost.plan_steps`)."""
        upper = np.triu(np.ones((len(self.work), len(self.work)), dtype=bool), 1)
        out = []
        for prefix in (self.fwd_work, self.bwd_work):
            diff = np.where(upper, prefix[None, :] - prefix[:, None], 0.0)
            out.append(diff[None, :, :] * self.inv_flops[:, None, None])
        return out[0], out[1]

    @cached_property
    def transfer_alpha(self) -> np.ndarray:
        """(E, L+1): seconds per sample of one transfer x (one way) on link e of layer l's
        output, ``8 out_bytes_l / bandwidth_e``; x = alpha b + latency_e
        (:func:`pipesl.cost.transfer_time`)."""
        return transfer_seconds_per_sample(self.out_bytes[None, :], self.bandwidth[:, None])

    def transfer_times(self, b: float) -> np.ndarray:
        """(E, L+1): one-way transfer x of b samples of layer l's output on link e."""
        return one_way_seconds(b, self.transfer_alpha, self.latency[:, None])

    def hop_loads(self, b: float) -> np.ndarray:
        """(E, L+1): what one hop of layer l's output puts on link e's busiest resource at b:
        2x on a half-duplex link, x on each direction of a full-duplex one."""
        return 2.0 * self.load_share[:, None] * self.transfer_times(b)

    def pooled_pass_times(self, b: float, after: int, nodes: np.ndarray | list[int]
                          ) -> tuple[float, float]:
        """Forward and backward time of layers after+1..L on ``nodes`` pooled into one: their
        FLOP/s added up, their least overhead. However those layers are split over those
        nodes, some stage takes at least this long in each direction."""
        speed = float(self.flops[nodes].sum())
        over = float(self.overhead[nodes].min())
        L = self.num_layers
        return (b * (self.fwd_work[L] - self.fwd_work[after]) / speed + over,
                b * (self.bwd_work[L] - self.bwd_work[after]) / speed + over)

    @cached_property
    def span_state(self) -> np.ndarray:
        """(L+1, L+1): model state bytes of layers i+1..j, ``state_factor * sum(param_bytes)``
        (meaningful where i < j)."""
        return self.state_factor * (self.params[None, :] - self.params[:, None])

    @cached_property
    def span_acts(self) -> np.ndarray:
        """(L+1, L+1): activation bytes per sample of layers i+1..j (kept W b times)."""
        return self.acts[None, :] - self.acts[:, None]

    @property
    def num_layers(self) -> int:
        """L."""
        return len(self.work) - 1

    def compute_times(self, b: float, start: int, nodes: np.ndarray | None = None
                      ) -> np.ndarray:
        """t of stages starting after layer ``start`` (i = start + 1) and ending at j > start.

        Returns an array (nodes, L - start) whose column c is j = start + 1 + c. Rows of nodes
        that cannot compute are +inf.
        """
        inv = self.inv_flops if nodes is None else self.inv_flops[nodes]
        over = self.overhead if nodes is None else self.overhead[nodes]
        work = self.work[start + 1:] - self.work[start]
        t = b * np.outer(inv, work) + 2.0 * over[:, None]
        can = self.can_compute if nodes is None else self.can_compute[nodes]
        t[~can] = np.inf
        return t

    def all_stage_times(self, b: float, nodes: np.ndarray) -> np.ndarray:
        """(C, L, L+1): t of ``nodes[c]`` running layers l+1..j (meaningful where j > l)."""
        starts = np.arange(self.num_layers)
        work = self.work[None, :] - self.work[starts][:, None]  # (L, L+1)
        inv = self.inv_flops[nodes]
        return b * inv[:, None, None] * work[None] + 2.0 * self.overhead[nodes][:, None, None]

    def all_stage_forward_times(self, b: float, nodes: np.ndarray,
                                fwd_flops: np.ndarray) -> np.ndarray:
        """(C, L, L+1): the forward pass alone of ``nodes[c]`` running layers l+1..j.

        ``b * sum(fwd_flops) / flops_n + o_n`` (see :func:`pipesl.cost.model.stage_phases`);
        ``fwd_flops`` holds the per-sample forward FLOPs of every layer. The backward pass is
        :meth:`all_stage_times` minus this.
        """
        fwd = np.concatenate(([0.0], np.cumsum(np.asarray(fwd_flops, dtype=float))))
        starts = np.arange(self.num_layers)
        work = fwd[None, :] - fwd[starts][:, None]  # (L, L+1)
        inv = self.inv_flops[nodes]
        return b * inv[:, None, None] * work[None] + self.overhead[nodes][:, None, None]

    def all_stage_memory(self, b: int, stages_from_end: int = 1) -> np.ndarray:
        """(L, L+1): bytes layers l+1..j need at b (meaningful where j > l)."""
        starts = np.arange(self.num_layers)
        return (self.state_factor * (self.params[None, :] - self.params[starts][:, None])
                + float(self.window(b, stages_from_end))
                * (self.acts[None, :] - self.acts[starts][:, None]))

    def compute_affine(self, node: int, first: int, last: int) -> Affine:
        """Affine time of node ``node`` (index) running layers first..last (1-based): the
        numbers of :meth:`stage_alpha` and :attr:`compute_beta`, read without array calls
        (the scalar API's hot path)."""
        work = self.work
        return Affine(float((work[last] - work[first - 1]) * self.inv_flops[node]),
                      float(self.compute_beta[node]))

    def pass_affines(self, node: int, first: int, last: int) -> tuple[Affine, Affine]:
        """Forward and backward pass of node ``node`` (index) running layers first..last
        (1-based): per sample ``sum(fwd_flops) / flops`` (``sum(bwd_flops) / flops``), fixed
        the overhead; the same numbers as :attr:`pass_alpha`."""
        inv = self.inv_flops[node]
        over = float(self.overhead[node])
        return (Affine(float((self.fwd_work[last] - self.fwd_work[first - 1]) * inv), over),
                Affine(float((self.bwd_work[last] - self.bwd_work[first - 1]) * inv), over))

    def hop_times(self, b: float, layers: np.ndarray | None = None) -> np.ndarray:
        """t = 2x of one hop on every link carrying layer l's output: array (E, layers)."""
        out = self.out_bytes if layers is None else self.out_bytes[layers]
        return hop_seconds(b, out[None, :], self.inv_bandwidth[:, None], self.latency[:, None])

    def hop_affine(self, link: int, layer: int) -> Affine:
        """Affine t = 2x of a hop on link ``link`` (index) carrying layer ``layer``'s output."""
        return Affine(float(self.hop_alpha[link, layer]), float(self.hop_beta[link]))

    def window(self, b: int | np.ndarray, stages_from_end: int | np.ndarray
               ) -> np.ndarray | float:
        """W * b of SPEC section 3 for a stage with ``stages_from_end`` = K - k + 1."""
        if self.schedule == "gpipe":
            return float(self.batch_size)
        if self.schedule == "1f1b-net":  # windows shrink to fit: one micro-batch must
            return np.minimum(1, stages_from_end) * b
        m = num_micro_batches(self.batch_size, b)
        return np.minimum(m, stages_from_end) * b

    def stage_memory(self, start: int, b: int, stages_from_end: int = 1) -> np.ndarray:
        """Bytes needed by layers start+1..j for every j > start: array (L - start,)."""
        params = self.params[start + 1:] - self.params[start]
        acts = self.acts[start + 1:] - self.acts[start]
        return self.state_factor * params + self.window(b, stages_from_end) * acts
