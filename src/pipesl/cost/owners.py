"""The cost model of several data owners sharing one network (docs/owners.md).

Owner o has its own single-source plan (``plan.plans[o]``, valid for
``problem.owner_problem(o)``) of ``M_o = ceil(B_o / b_o)`` micro-batches of ``b_o`` samples.
Every figure here is built from the single-owner model of :mod:`pipesl.cost.model` and
:mod:`pipesl.cost.bounds`, owner by owner, then combined per resource:

* **Load.** Resource r is busy ``busy_r = sum_o M_o * load_{o,r}(b_o)`` seconds per iteration
  (every owner's forward and backward passes on it, a shared server stage once per owner's
  passes: it computes each owner's micro-batches).
* **Bound** (``training.owners: parallel``; every term is a lower bound on the joint
  makespan, whatever the service order, because an owner's tasks keep their own durations
  and precedences and other owners' tasks only add work on shared resources):

  - ``resource:<r>``: ``min head + busy_r + min tail`` over every owner's tasks on r, where a
    task's head is the time its micro-batch needs before it (the sum of its owner's earlier
    forward passes, or its whole forward plus the later backward passes) and its tail the
    time it still needs after it (:mod:`pipesl.cost.bounds`, bound 2, over all owners);
  - ``owner:<label>``: owner o's own single-owner bound (:func:`pipesl.cost.bounds.
    pipeline_bound` with no window or chain knowledge; GPipe's flush; or the schedule-true
    bound a caller passes, e.g. :func:`pipesl.schedules.makespan_lower_bound`), which holds for
    owner o's last backward and so for the iteration.

  With ``training.owners: sequential`` owners take turns, each alone on the network, so the
  round's bound is the sum of the owners' own bounds.
* **Memory** on a node: the model state of every stage it runs (``per-owner``: one copy per
  owner; ``shared``: a server stage's state once, since every owner runs the same layers there)
  plus each owner's peak activations in flight (its SPEC window, as alone: an owner's
  in-flight count on a stage depends only on that stage's action order, which sharing keeps),
  summed over owners (``parallel``) or the largest owner's (``sequential``: turns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipesl.cost.bounds import pipeline_bound, plan_bound_steps
from pipesl.cost.model import Evaluation, Resource, evaluate, memory_use, num_micro_batches
from pipesl.cost.steps import plan_steps
from pipesl.plan import OwnersPlan, Plan, validate_owners_plan
from pipesl.problem.types import Problem

__all__ = [
    "OwnersBound",
    "OwnersEvaluation",
    "ResourceTerms",
    "combine_resource_terms",
    "evaluate_owners",
    "owner_bound",
    "owner_resource_terms",
    "owners_busy",
    "owners_lower_bound",
    "owners_memory",
]


def owners_busy(problem: Problem, plan: OwnersPlan) -> dict[str, float]:
    """Seconds each resource is busy in one iteration, summed over owners (first-use order).

    ``sum_o M_o * (forward + backward time of owner o's passes on r at b_o)``; every
    micro-batch counted with b_o samples, as the analytic model does.
    """
    busy: dict[Resource, float] = {}
    for o, p in enumerate(plan.plans):
        sub = problem.owner_problem(o)
        b = p.micro_batch_size
        m = num_micro_batches(sub.training.batch_size, b)
        for s in plan_steps(sub, p):
            for r, t in ((s.forward_resource, s.forward), (s.backward_resource, s.backward)):
                busy[r] = busy.get(r, 0.0) + m * t(b)
    return {r.name: v for r, v in busy.items()}


def owner_bound(problem: Problem, plan: OwnersPlan, owner: int) -> float:
    """Owner ``owner``'s single-owner makespan lower bound, valid for any schedule table.

    :func:`~pipesl.cost.bounds.pipeline_bound` of its steps with windows M and chains 1
    (which always hold) and GPipe's flush when ``training.schedule`` is ``gpipe``.
    """
    sub = problem.owner_problem(owner)
    p = plan.plans[owner]
    steps, last = plan_bound_steps(sub, p)
    m = num_micro_batches(sub.training.batch_size, p.micro_batch_size)
    k = p.num_stages
    return pipeline_bound(steps, p.micro_batch_size, m, [float(m)] * k, [1] * k,
                          sub.training.schedule == "gpipe", last)


@dataclass(frozen=True)
class OwnersBound:
    """The named lower bounds on one multi-owner iteration (module docstring)."""

    resource_terms: dict[Resource, float]
    """``resource:<r>`` term per resource: min head + busy + min tail over all owners."""
    owner_terms: tuple[float, ...]
    """Each owner's own bound (``owner:<label>``), in owner order."""
    mode: str
    """``parallel`` or ``sequential`` (``training.owners``)."""

    @property
    def value_s(self) -> float:
        """The bound: parallel, the largest term; sequential, the sum of the owner terms."""
        if self.mode == "sequential":
            return math.fsum(self.owner_terms)
        return max([*self.resource_terms.values(), *self.owner_terms])

    def named(self, labels: Sequence[str]) -> dict[str, float]:
        """Every term by name: ``resource:<r>`` and ``owner:<label>``."""
        out = {f"resource:{r.name}": v for r, v in self.resource_terms.items()}
        out.update((f"owner:{label}", v) for label, v in zip(labels, self.owner_terms,
                                                              strict=True))
        return out


def owners_bound(problem: Problem, plan: OwnersPlan,
                 owner_bounds: Sequence[float] | None = None) -> OwnersBound:
    """Every term of the multi-owner lower bound (see :class:`OwnersBound`).

    Parameters
    ----------
    problem : Problem
    plan : OwnersPlan
        Assumed valid (:func:`~pipesl.plan.validate_owners_plan`).
    owner_bounds : sequence of float, optional
        Each owner's own makespan lower bound (e.g. schedule-true, from
        :func:`pipesl.schedules.makespan_lower_bound` on ``problem.owner_problem(o)``); each
        must be valid for that owner alone. Default: :func:`owner_bound`.
    """
    terms = combine_resource_terms([owner_resource_terms(problem, p, o)
                                    for o, p in enumerate(plan.plans)])
    if owner_bounds is None:
        owner_terms = tuple(owner_bound(problem, plan, o) for o in range(len(plan.plans)))
    else:
        owner_terms = tuple(float(x) for x in owner_bounds)
        if len(owner_terms) != len(plan.plans):
            raise ValueError(f"owner_bounds: {len(owner_terms)} values for "
                             f"{len(plan.plans)} owners")
    return OwnersBound(terms, owner_terms, problem.training.owners_mode)


ResourceTerms = dict[Resource, tuple[float, float, float]]
"""Resource -> (least head, busy seconds, least tail) of one owner's tasks on it."""


def owner_resource_terms(problem: Problem, plan: Plan, owner: int) -> ResourceTerms:
    """Owner ``owner``'s share of every ``resource:<r>`` term of :func:`owners_bound`.

    Per resource its tasks' least head, their busy time ``M_o * (passes on r at b_o)`` and
    least tail (:mod:`pipesl.cost.bounds`, bound 2); :func:`combine_resource_terms` of the
    owners' shares is the terms of their joint plan (least head, summed busy, least tail), so
    a planner can compute each candidate plan's share once.
    """
    sub = problem.owner_problem(owner)
    b = plan.micro_batch_size
    m = num_micro_batches(sub.training.batch_size, b)
    steps = plan_steps(sub, plan)
    f = [s.forward(b) for s in steps]
    g = [s.backward(b) for s in steps]
    sf, sg = math.fsum(f), math.fsum(g)
    hf = hg = 0.0
    out: ResourceTerms = {}
    for s, fp, gp in zip(steps, f, g, strict=True):
        # forward at p: head HF(p), tail the rest of the trip; backward at p: head the
        # whole forward plus the backward after p, tail HG(p) (cost.bounds, bound 2).
        for r, head, dur, tail in ((s.forward_resource, hf, fp, sf - hf - fp + sg),
                                   (s.backward_resource, sf + sg - hg - gp, gp, hg)):
            h0, b0, t0 = out.get(r, (math.inf, 0.0, math.inf))
            out[r] = (min(h0, head), b0 + m * dur, min(t0, tail))
        hf += fp
        hg += gp
    return out


def combine_resource_terms(shares: Sequence[ResourceTerms]) -> dict[Resource, float]:
    """``resource:<r>`` terms of several owners' shares: ``min head + sum busy + min tail``."""
    heads: dict[Resource, float] = {}
    tails: dict[Resource, float] = {}
    busy: dict[Resource, float] = {}
    for share in shares:
        for k, (h, b, t) in share.items():
            heads[k] = min(heads.get(k, math.inf), h)
            tails[k] = min(tails.get(k, math.inf), t)
            busy[k] = busy.get(k, 0.0) + b
    return {r: heads[r] + busy[r] + tails[r] for r in busy}


def owners_lower_bound(problem: Problem, plan: OwnersPlan,
                       owner_bounds: Sequence[float] | None = None) -> float:
    """A lower bound on the iteration (parallel) or round (sequential) time of ``plan``.

    ``max(max_r [min head + busy_r + min tail], max_o own bound_o)`` for ``parallel``,
    ``sum_o own bound_o`` for ``sequential`` (module docstring; :func:`owners_bound` gives
    each term by name).
    """
    return owners_bound(problem, plan, owner_bounds).value_s


def owners_memory(problem: Problem, plan: OwnersPlan) -> dict[str, float]:
    """Bytes used on each compute node over all owners (first-use order).

    Per owner, :func:`~pipesl.cost.memory_use` of its plan splits into model state
    (``state_factor * param_bytes`` of its stage) and activations. A node holds the state of
    every owner's stage on it (with ``training.replicas: shared``, a server stage's state --
    stage index >= 1, the same layers for every owner -- once) plus activations: every
    owner's (``parallel``: all owners are in flight at once) or the largest owner's
    (``sequential``: an owner's turn ends with its activations freed).
    """
    shared = problem.training.replicas == "shared"
    sequential = problem.training.owners_mode == "sequential"
    state_of: dict[str, float] = {}
    acts_of: dict[str, float] = {}
    counted: set[str] = set()
    for o, p in enumerate(plan.plans):
        sub = problem.owner_problem(o)
        per_node = memory_use(sub, p)
        for k, s in enumerate(p.stages):
            layers = problem.model.layers[s.layer_slice]
            state = sub.training.state_factor * sum(x.param_bytes for x in layers)
            acts = per_node[s.node] - state
            if shared and k >= 1:
                if s.node in counted:
                    state = 0.0
                counted.add(s.node)
            state_of[s.node] = state_of.get(s.node, 0.0) + state
            held = acts_of.get(s.node, 0.0)
            acts_of[s.node] = max(held, acts) if sequential else held + acts
    return {n: state_of[n] + acts_of[n] for n in state_of}


@dataclass(frozen=True)
class OwnersEvaluation:
    """A multi-owner plan's costs: per-owner single-owner evaluations, joint load and memory."""

    plan: OwnersPlan
    owners: tuple[Evaluation, ...]
    """Each owner's plan evaluated alone on its problem (SPEC section 3, T and loads)."""
    busy_s: dict[str, float]
    """Seconds each resource is busy per iteration over all owners (:func:`owners_busy`)."""
    bound: OwnersBound
    """The named lower bounds (:func:`owners_bound`, schedule-independent)."""
    memory: dict[str, tuple[float, float]]
    """Node -> (bytes used over all owners, bytes available)."""
    violations: tuple[str, ...]

    @property
    def feasible(self) -> bool:
        """True when every node holds what all owners put on it."""
        return not self.violations

    @property
    def lower_bound_s(self) -> float:
        """The bound's value (:attr:`OwnersBound.value_s`)."""
        return self.bound.value_s


def evaluate_owners(problem: Problem, plan: OwnersPlan) -> OwnersEvaluation:
    """Validate ``plan`` and compute its joint costs.

    Raises
    ------
    PlanError
        When the plan is structurally invalid (:func:`~pipesl.plan.validate_owners_plan`).
    """
    validate_owners_plan(problem, plan)
    evaluations = tuple(evaluate(problem.owner_problem(o), p) for o, p in enumerate(plan))
    used = owners_memory(problem, plan)
    memory = {n: (u, problem.network.node(n).memory) for n, u in used.items()}
    violations = tuple(f"memory on {n}: needs {u:.4g} bytes over all owners, has {cap:.4g}"
                       for n, (u, cap) in memory.items() if u > cap)
    return OwnersEvaluation(plan, evaluations, owners_busy(problem, plan),
                            owners_bound(problem, plan), memory, violations)
