"""THE cost model of pipesl (SPEC section 3); every time and memory figure comes from here.

Per micro-batch of b samples, a plan is a sequence of *stages* in pipeline order — compute
stages and link hops — each with a time affine in b, ``t_s(b) = alpha_s * b + beta_s``:

* compute stage on node n with layers i..j (paper: computation latency of a sub-model)::

      t = b * sum_{l=i..j} (fwd_flops_l + bwd_flops_l) / flops_n + 2 * overhead_n

* link hop over link e carrying the output of layer l (paper: communication latency of the
  smashed data and its gradient)::

      x = 8 * b * out_bytes_l / bandwidth_e + latency_e,      t = 2 * x

Resources and their loads per micro-batch: a compute node carries its stage's t; a half-duplex
link the sum of 2x over every hop that uses it (either direction); a full-duplex link is two
resources, one per direction, each carrying x of every hop that uses the link.

The iteration latency (the paper's objective: the first micro-batch's trip plus (M - 1) times
the pipeline bottleneck)::

    T(plan, b) = sum_s t_s(b) + (M - 1) * max_r load_r(b),      M = ceil(B / b)

Memory on a node running layers i..j: ``xi * sum(param_bytes) + W * b * sum(act_bytes)``
with W * b = B for GPipe, W = min(M, K - k + 1) for 1F1B (k = 1-based stage index) and, for
1F1B-net, W = the stage's warm-up depth (:func:`net_warmups`, at least 1, capped by memory).

Each stage splits into a forward and a backward pass (the pipeline steps the simulator
schedules, :mod:`pipesl.cost.steps`): a compute stage's forward takes
``b * sum(fwd_flops) / flops_n + o_n`` and its backward ``b * sum(bwd_flops) / flops_n + o_n``;
a hop's forward (activation) and backward (gradient) each take x.

The affine forms are stored (:class:`Affine`) so that the planner's decision graph, the
closed-form micro-batch size and the simulator can never drift apart. The same formulas,
vectorised with prefix sums for the solvers' hot paths, are in :mod:`pipesl.cost.tables`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal, overload

import numpy as np

from pipesl.plan import Plan, plan_to_dict, validate_plan
from pipesl.problem.types import Layer, Link, Problem

__all__ = [
    "Affine",
    "Evaluation",
    "PlanStage",
    "Resource",
    "activation_window",
    "compute_time",
    "evaluate",
    "feasible_micro_batch_sizes",
    "flops_from_alpha",
    "hop_seconds",
    "hop_time",
    "link_resources",
    "memory_use",
    "min_stage_memory",
    "net_warmups",
    "num_micro_batches",
    "objective",
    "overhead_from_beta",
    "plan_document",
    "plan_stages",
    "rate_from_seconds",
    "resource_loads",
    "resource_name",
    "seconds_per_bit",
    "stage_memory",
    "training_flops",
    "transfer_bits",
    "transfer_seconds_per_sample",
    "transfer_time",
    "transfer_weight",
]


@dataclass(frozen=True)
class Affine:
    """``alpha * b + beta``: a time (s) as a function of the micro-batch size b."""

    alpha: float
    """Seconds per sample."""
    beta: float
    """Seconds per micro-batch, independent of b."""

    def __call__(self, b: float) -> float:
        return self.alpha * b + self.beta

    def __add__(self, other: Affine) -> Affine:
        return Affine(self.alpha + other.alpha, self.beta + other.beta)

    def scaled(self, factor: float) -> Affine:
        """``factor * (alpha * b + beta)``."""
        return Affine(self.alpha * factor, self.beta * factor)


ZERO = Affine(0.0, 0.0)


@overload
def num_micro_batches(batch_size: int, micro_batch_size: int) -> int: ...
@overload
def num_micro_batches(batch_size: int, micro_batch_size: np.ndarray) -> np.ndarray: ...
def num_micro_batches(batch_size: int, micro_batch_size: int | np.ndarray) -> int | np.ndarray:
    """M = ceil(B / b), the one definition (``micro_batch_size`` may be an array of b)."""
    return -(-batch_size // micro_batch_size)


@dataclass(frozen=True, eq=False)
class Resource:
    """A resource of SPEC section 3, typed: a compute node, a half-duplex link, or one
    direction of a full-duplex link. Its string :attr:`name` is for the edges (plan
    documents, traces, reports); node ids may contain ``-`` or ``>``, so code keeps the
    typed value (or the ends) rather than parsing a name back.

    Values are compared and hashed by their four fields; the hash is computed once (the
    bounds and the simulator key dictionaries by resource in their hot loops)."""

    kind: Literal["node", "link"]
    u: str
    """The node, or a link's first end (half duplex: ``source``; full duplex: from)."""
    v: str | None = None
    """A link's other end (half duplex: ``target``; full duplex: to)."""
    full_duplex: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.u, self.v, self.full_duplex)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def __reduce__(self) -> tuple[type[Resource], tuple[str, str, str | None, bool]]:
        # rebuilt, not restored: a str hash differs between processes
        return Resource, (self.kind, self.u, self.v, self.full_duplex)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Resource):
            return NotImplemented
        return (self._hash == other._hash  # type: ignore[attr-defined]
                and self.kind == other.kind and self.u == other.u and self.v == other.v
                and self.full_duplex == other.full_duplex)

    @property
    def name(self) -> str:
        """``node:<id>``; ``link:<u>-<v>`` (half duplex, ends as written in the input);
        ``link:<u>><v>`` (the u -> v direction of a full-duplex link)."""
        return resource_name(self.kind, self.u, self.v, self.full_duplex)


def resource_name(kind: Literal["node", "link"], u: str, v: str | None = None,
                  full_duplex: bool = False) -> str:
    """The one naming rule for resources (SPEC section 4), :attr:`Resource.name` as text.

    ``node:<id>``; ``link:<u>-<v>`` for a half-duplex link (ends as written in the input);
    ``link:<u>><v>`` for the u -> v direction of a full-duplex link.
    """
    if kind == "node":
        return f"node:{u}"
    return f"link:{u}>{v}" if full_duplex else f"link:{u}-{v}"


def link_resources(link: Link, u: str, v: str, x: Affine
                   ) -> tuple[tuple[Resource, Affine], ...]:
    """Loads put on ``link``'s resources by one hop u -> v whose one-way transfer takes ``x``."""
    if link.duplex == "full":
        return ((Resource("link", u, v, True), x), (Resource("link", v, u, True), x))
    return ((Resource("link", link.source, link.target), x.scaled(2.0)),)


def seconds_per_bit(u: str, v: str, data: Mapping[str, Any]) -> float:
    """networkx edge weight ``1 / bandwidth``: summed over a path, its seconds per bit."""
    return 1.0 / float(data["bandwidth"])


def transfer_weight(b: float, out_bytes: float) -> Callable[[str, str, Mapping[str, Any]], float]:
    """networkx edge weight: the one-way transfer x of b samples of ``out_bytes`` each.

    The number of :meth:`CostTables.transfer_times <pipesl.cost.CostTables.transfer_times>`
    (``transfer_seconds_per_sample(out_bytes, bandwidth) * b + latency``), bit for bit.
    """

    def weight(u: str, v: str, data: Mapping[str, Any]) -> float:
        return one_way_seconds(b, transfer_seconds_per_sample(out_bytes, data["bandwidth"]),
                               data["latency"])

    return weight


def one_way_seconds(b: Any, seconds_per_sample: Any, latency: Any) -> Any:
    """x = alpha b + latency of SPEC section 3, on numbers or arrays: the one-way transfer of
    b samples whose ``alpha`` is :func:`transfer_seconds_per_sample`."""
    return seconds_per_sample * b + latency


def hop_seconds(b: Any, out_bytes: Any, inv_bandwidth: Any, latency: Any) -> Any:
    """t = 2x of a hop, ``2 (8 b out_bytes / bandwidth + latency)``, on numbers or arrays.

    ``inv_bandwidth`` and ``latency`` may be sums over a path (a relaxed route of several
    hops), which is how the baselines' bounds use it. The number of
    :meth:`CostTables.hop_times <pipesl.cost.CostTables.hop_times>`, bit for bit (it calls
    this function).
    """
    return 2.0 * (8.0 * b * (inv_bandwidth * out_bytes) + latency)


def training_flops(layers: Iterable[Layer]) -> float:
    """FLOPs per sample of one forward and one backward pass over ``layers``."""
    return sum(x.fwd_flops + x.bwd_flops for x in layers)


def compute_time(problem: Problem, node: str, first: int, last: int) -> Affine:
    """Affine time of a compute stage: node ``node`` runs layers ``first..last`` (1-based).

    Read from the problem's :class:`~pipesl.cost.CostTables` (per-sample ``stage_alpha``,
    fixed ``compute_beta``): the one formula the solvers' arrays use too.
    """
    from pipesl.cost.tables import tables_for

    return tables_for(problem).compute_affine(problem.network.node_index[node], first, last)


def transfer_seconds_per_sample(out_bytes: Any, bandwidth: Any) -> Any:
    """alpha of a one-way transfer x = alpha b + latency: ``8 out_bytes / bandwidth``, on
    numbers or arrays (:func:`transfer_time` and ``CostTables.transfer_alpha`` both use it)."""
    return 8.0 * out_bytes / bandwidth


def transfer_time(link: Link, out_bytes: float) -> Affine:
    """One-way transfer x of a micro-batch's activation of ``out_bytes`` per sample."""
    return Affine(transfer_seconds_per_sample(out_bytes, link.bandwidth), link.latency)


def hop_time(problem: Problem, u: str, v: str, layer: int) -> Affine:
    """Affine stage time ``t = 2x`` of a hop u -> v carrying layer ``layer``'s output."""
    link = problem.network.link_between(u, v)
    if link is None:
        raise KeyError(f"no link between {u!r} and {v!r}")
    return transfer_time(link, problem.model.out_bytes(layer)).scaled(2.0)


# ---------------------------------------------------------------- inverse formulas
# The forward formulas above solved for the figure a measurement reveals (drift detection in
# pipesl.adapt.drift, speed calibration in pipesl.profiling.calibrate).


def transfer_bits(out_bytes: float) -> float:
    """Bits per sample of a transfer of layer output ``out_bytes`` (``x = b * bits / bw + d``)."""
    return 8.0 * out_bytes


def rate_from_seconds(work: float, samples: int, seconds: float, fixed: float
                      ) -> float | None:
    """The rate r solving ``seconds = samples * work / r + fixed``; None when undetermined.

    A pass (``work`` = FLOPs per sample, ``fixed`` = overhead) gives FLOP/s; a transfer
    (``work`` = :func:`transfer_bits`, ``fixed`` = latency) gives the bandwidth in bit/s.
    None when the time is not above the fixed part or there is no work.
    """
    rate_time = seconds - fixed
    if rate_time <= 0 or work <= 0:
        return None
    return samples * work / rate_time


def flops_from_alpha(flops_per_sample: float, alpha: float) -> float:
    """F solving :func:`compute_time`'s ``alpha = flops_per_sample / F`` (alpha > 0)."""
    return flops_per_sample / alpha


def overhead_from_beta(beta: float) -> float:
    """o solving :func:`compute_time`'s ``beta = 2 o`` (one forward, one backward pass), >= 0."""
    return max(beta / 2.0, 0.0)


@dataclass(frozen=True)
class PlanStage:
    """One stage of a plan in pipeline order: a compute stage or a link hop."""

    kind: Literal["compute", "hop"]
    name: str
    """People-readable: ``dev0[1-4]`` or ``dev0>r1 (L4)``."""
    time: Affine
    """t_s(b): forward plus backward time of one micro-batch."""
    loads: tuple[tuple[Resource, Affine], ...]
    """The resources it occupies and its load on each, per micro-batch."""
    node: str | None = None
    """Compute stage: its node."""
    hop: tuple[str, str] | None = None
    """Link hop: (from, to) in the forward direction."""
    layer: int = 0
    """Compute stage: its last layer; hop: the layer whose output it carries."""
    stage_index: int = 0
    """0-based index of the compute stage it belongs to (a hop: the stage it leaves)."""


def plan_stages(problem: Problem, plan: Plan) -> tuple[PlanStage, ...]:
    """The plan's stages in pipeline order: compute 1, hops of route 1, compute 2, ...

    The hops of the label route (with ``labels_at``) come last.
    """
    out: list[PlanStage] = []
    net = problem.network

    def hops(route: tuple[str, ...], layer: int, k: int) -> None:
        for u, v in pairwise(route):
            link = net.link_between(u, v)
            assert link is not None, "validate_plan guarantees links exist"
            x = transfer_time(link, problem.model.out_bytes(layer))
            out.append(PlanStage("hop", f"{u}>{v} (L{layer})", x.scaled(2.0),
                                 link_resources(link, u, v, x), hop=(u, v), layer=layer,
                                 stage_index=k))

    for k, s in enumerate(plan.stages):
        t = compute_time(problem, s.node, s.first_layer, s.last_layer)
        out.append(PlanStage("compute", f"{s.node}[{s.first_layer}-{s.last_layer}]", t,
                             ((Resource("node", s.node), t),), node=s.node,
                             layer=s.last_layer, stage_index=k))
        if k < len(plan.routes):
            hops(plan.routes[k], s.last_layer, k)
    if plan.label_route is not None and len(plan.label_route) > 1:
        hops(plan.label_route, problem.model.num_layers, len(plan.stages) - 1)
    return tuple(out)


def resource_loads(problem: Problem, plan: Plan) -> dict[Resource, Affine]:
    """Load (per micro-batch, affine in b) of every resource the plan uses, in first-use order
    (:attr:`Resource.name` gives the SPEC name the plan document and reports use)."""
    loads: dict[Resource, Affine] = {}
    for st in plan_stages(problem, plan):
        for r, a in st.loads:
            loads[r] = loads.get(r, ZERO) + a
    return loads


def objective(problem: Problem, plan: Plan, micro_batch_size: int | None = None) -> float:
    """T(plan, b) of SPEC section 3 (``b`` defaults to the plan's)."""
    b = plan.micro_batch_size if micro_batch_size is None else micro_batch_size
    stages = plan_stages(problem, plan)
    first = sum(st.time(b) for st in stages)
    loads = resource_loads(problem, plan)
    m = num_micro_batches(problem.training.batch_size, b)
    return first + (m - 1) * max(a(b) for a in loads.values())


# ---------------------------------------------------------------- memory


def _window(problem: Problem, b: int, stage_index: int, num_stages: int) -> float:
    """W * b: samples whose activations a stage keeps (GPipe: B; 1F1B: min(M, K-k+1) * b).

    ``1f1b-net`` adapts its windows to memory (:func:`net_warmups`), so what a stage must hold
    to be placed at all is one micro-batch (W = 1).
    """
    from pipesl.cost.tables import tables_for

    return float(tables_for(problem).window(b, num_stages - stage_index))


def net_warmups(problem: Problem, plan: Plan, micro_batch_size: int | None = None
                ) -> tuple[int, ...]:
    """Warm-up depth (= peak micro-batches in flight) of each compute stage under ``1f1b-net``.

    Stage k must keep enough micro-batches in flight to cover its round trip at the pipeline's
    rate: with tau the largest resource load (one micro-batch per tau at steady state) and
    ``R_k`` the time from the end of stage k's forward pass to the start of its backward pass
    (every later step forward and backward, hops and label route included),
    ``need_k = ceil((t_k + R_k) / tau)``. The depth is ``max(K - k, need_k)`` (never less than
    1F1B's), capped by M and by the micro-batches whose activations fit in the node's memory,
    then made non-increasing along the pipeline (a later stage never runs more warm-up
    forwards than an earlier one, or the schedule would deadlock). At least 1.
    """
    from pipesl.cost.tables import tables_for

    tables = tables_for(problem)
    tr = problem.training
    b = plan.micro_batch_size if micro_batch_size is None else micro_batch_size
    m = num_micro_batches(tr.batch_size, b)
    k_total = plan.num_stages
    stages = plan_stages(problem, plan)
    times = [st.time(b) for st in stages]
    tau = max(a(b) for a in resource_loads(problem, plan).values())
    pos = [i for i, st in enumerate(stages) if st.kind == "compute"]
    out: list[int] = []
    for k, s in enumerate(plan.stages):
        p = pos[k]
        trip = sum(times[p:])
        need = math.ceil(trip / tau - 1e-9) if tau > 0 else 1
        want = min(m, max(k_total - k, need))
        i, j = s.first_layer - 1, s.last_layer
        acts = float(tables.span_acts[i, j]) * b
        free = problem.network.node(s.node).memory - float(tables.span_state[i, j])
        cap = m if acts <= 0 or free >= m * acts else max(0, math.floor(free / acts + 1e-12))
        w = max(1, min(want, cap))
        if out:
            w = min(w, out[-1])
        out.append(w)
    return tuple(out)


def activation_window(problem: Problem, micro_batch_size: int, stage_index: int,
                      num_stages: int, schedule: str | None = None) -> float:
    """W * b of the SPEC memory rule: samples whose activations stage ``stage_index`` keeps.

    ``B`` for GPipe; ``min(M, K - k) * b`` for 1F1B (``k`` 0-based here, so this is the
    SPEC's ``min(M, K - k + 1)`` with 1-based k). ``schedule`` defaults to the problem's.
    """
    if schedule is not None and schedule != problem.training.schedule:
        problem = problem.with_training(schedule=schedule)
    return _window(problem, micro_batch_size, stage_index, num_stages)


def stage_memory(problem: Problem, first: int, last: int, b: int, stage_index: int,
                 num_stages: int) -> float:
    """Bytes a node needs to run layers first..last as stage ``stage_index`` (0-based) of K
    (read from the problem's :class:`~pipesl.cost.CostTables`)."""
    from pipesl.cost.tables import tables_for

    t = tables_for(problem)
    return float(t.span_state[first - 1, last]
                 + float(t.window(b, num_stages - stage_index)) * t.span_acts[first - 1, last])


def min_stage_memory(problem: Problem, first: int, last: int, stages_after: int) -> float:
    """The least memory layers first..last need over every allowed b (b = 1 is the least).

    ``stages_after`` is the number of compute stages that follow (K - k for stage k).
    """
    b = problem.training.micro_batch_size or 1
    return stage_memory(problem, first, last, b, 0, stages_after + 1)


def memory_use(problem: Problem, plan: Plan, micro_batch_size: int | None = None
               ) -> dict[str, float]:
    """Bytes used on each compute node of the plan."""
    b = plan.micro_batch_size if micro_batch_size is None else micro_batch_size
    k_total = plan.num_stages
    if problem.training.schedule == "1f1b-net":  # the windows the schedule really keeps
        from pipesl.cost.tables import tables_for

        t = tables_for(problem)
        out = {}
        for s, w in zip(plan.stages, net_warmups(problem, plan, b), strict=True):
            i, j = s.first_layer - 1, s.last_layer
            out[s.node] = float(t.span_state[i, j] + w * b * t.span_acts[i, j])
        return out
    return {s.node: stage_memory(problem, s.first_layer, s.last_layer, b, k, k_total)
            for k, s in enumerate(plan.stages)}


def feasible_micro_batch_sizes(problem: Problem, plan: Plan) -> np.ndarray:
    """Boolean mask over b = 1..B (index b - 1): True where every stage fits in memory."""
    from pipesl.cost.tables import tables_for

    t = tables_for(problem)
    tr = problem.training
    b = np.arange(1, tr.batch_size + 1)
    ok = np.ones(tr.batch_size, dtype=bool)
    k_total = plan.num_stages
    for k, s in enumerate(plan.stages):
        i, j = s.first_layer - 1, s.last_layer
        need = t.span_state[i, j] + t.window(b, k_total - k) * t.span_acts[i, j]
        ok &= need <= problem.network.node(s.node).memory
    return ok


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Evaluation:
    """A plan's costs under SPEC section 3 (what ``pipesl evaluate`` reports)."""

    plan: Plan
    objective_s: float
    first_micro_batch_s: float
    bottleneck_s: float
    bottleneck_resource: str
    resource_loads: dict[str, float]
    stage_times: tuple[tuple[str, float], ...]
    batch_size: int
    micro_batch_size: int
    num_micro_batches: int
    memory: dict[str, tuple[float, float]]
    """Node -> (bytes used, bytes available)."""
    violations: tuple[str, ...] = field(default=())

    @property
    def feasible(self) -> bool:
        """True when every stage fits in its node's memory."""
        return not self.violations


def evaluate(problem: Problem, plan: Plan) -> Evaluation:
    """Validate ``plan`` and compute every cost figure of SPEC section 3.

    Raises
    ------
    PlanError
        When the plan is structurally invalid. A plan that breaks memory is evaluated and
        reported with its violations instead.
    """
    validate_plan(problem, plan)
    b = plan.micro_batch_size
    stages = plan_stages(problem, plan)
    loads = {r.name: a(b) for r, a in resource_loads(problem, plan).items()}  # the edge: names
    bottleneck = max(loads, key=lambda r: loads[r])
    m = num_micro_batches(problem.training.batch_size, b)
    first = sum(st.time(b) for st in stages)
    used = memory_use(problem, plan)
    memory = {n: (u, problem.network.node(n).memory) for n, u in used.items()}
    violations = tuple(
        f"memory on {n}: needs {u:.4g} bytes, has {cap:.4g}"
        for n, (u, cap) in memory.items() if u > cap)
    return Evaluation(
        plan=plan,
        objective_s=first + (m - 1) * loads[bottleneck],
        first_micro_batch_s=first,
        bottleneck_s=loads[bottleneck],
        bottleneck_resource=bottleneck,
        resource_loads=loads,
        stage_times=tuple((st.name, st.time(b)) for st in stages),
        batch_size=problem.training.batch_size,
        micro_batch_size=b,
        num_micro_batches=m,
        memory=memory,
        violations=violations,
    )


def plan_document(evaluation: Evaluation, solver: Mapping[str, Any] | None = None,
                  extra: bool = True) -> dict[str, Any]:
    """The SPEC section 4 plan object, plus (``extra``) feasibility and memory fields."""
    ev = evaluation
    doc: dict[str, Any] = {"objective_s": ev.objective_s,
                           "micro_batch_size": ev.micro_batch_size,
                           "num_micro_batches": ev.num_micro_batches,
                           "batch_size": ev.batch_size}
    decisions = plan_to_dict(ev.plan)
    doc["stages"] = decisions["stages"]
    doc["routes"] = decisions["routes"]
    doc["label_route"] = decisions["label_route"]
    doc["first_micro_batch_s"] = ev.first_micro_batch_s
    doc["bottleneck_s"] = ev.bottleneck_s
    doc["bottleneck_resource"] = ev.bottleneck_resource
    doc["resource_loads"] = dict(ev.resource_loads)
    if solver is not None:
        doc["solver"] = dict(solver)
    if extra:
        doc["feasible"] = ev.feasible
        doc["violations"] = list(ev.violations)
        doc["memory"] = {n: {"used_bytes": u, "capacity_bytes": (c if math.isfinite(c) else None)}
                         for n, (u, c) in ev.memory.items()}
        doc["stage_times_s"] = [{"stage": name, "time_s": t} for name, t in ev.stage_times]
    return doc
