"""Plans: stages, routes and the micro-batch size (SPEC section 4), and their validity.

A :class:`Plan` holds only the decisions. Its costs come from :func:`pipesl.cost.evaluate`,
and :func:`pipesl.cost.plan_document` renders the full SPEC plan JSON (decisions + costs).
Layers are 1-based and inclusive, as in the SPEC; :meth:`Stage.layer_slice` converts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx

from pipesl.exceptions import PlanError, ProblemError, _short
from pipesl.problem.types import Problem

__all__ = [
    "OwnersPlan",
    "Plan",
    "Stage",
    "load_plan",
    "load_single_plan",
    "owners_plan_from_dict",
    "owners_plan_to_dict",
    "plan_from_dict",
    "plan_label",
    "plan_to_dict",
    "validate_owners_plan",
    "validate_plan",
]


@dataclass(frozen=True)
class Stage:
    """A compute stage: ``node`` runs layers ``first_layer..last_layer`` (1-based, inclusive)."""

    node: str
    first_layer: int
    last_layer: int

    @property
    def layer_slice(self) -> slice:
        """The 0-based slice of the model's layer list."""
        return slice(self.first_layer - 1, self.last_layer)

    @property
    def num_layers(self) -> int:
        """How many layers the stage runs."""
        return self.last_layer - self.first_layer + 1


@dataclass(frozen=True)
class Plan:
    """Splitting, placement, routing and micro-batch size (SPEC section 1)."""

    stages: tuple[Stage, ...]
    """Compute stages in pipeline order; stage 1 runs on the source."""
    routes: tuple[tuple[str, ...], ...]
    """Route k joins stage k to stage k+1 (node ids, both ends included)."""
    micro_batch_size: int
    """b, samples per micro-batch."""
    label_route: tuple[str, ...] | None = None
    """With ``labels_at``: last stage node ... label node."""

    @property
    def num_stages(self) -> int:
        """K, the number of compute stages."""
        return len(self.stages)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes that compute, in stage order."""
        return tuple(s.node for s in self.stages)

    def with_micro_batch_size(self, b: int) -> Plan:
        """The same placement and routes with another micro-batch size."""
        return Plan(self.stages, self.routes, int(b), self.label_route)

    def all_routes(self) -> tuple[tuple[str, ...], ...]:
        """The stage routes followed by the label route (when it has hops)."""
        if self.label_route is not None and len(self.label_route) > 1:
            return (*self.routes, self.label_route)
        return self.routes


def _fail(field: str, message: str) -> PlanError:
    return PlanError(f"{field}: {message}")


def validate_plan(problem: Problem, plan: Plan) -> Plan:
    """Check that ``plan`` is a structurally valid plan of ``problem`` (SPEC section 3).

    Stages cover layers 1..L in order; stage 1 runs on the source; stage nodes can compute and
    are distinct; route k is a simple path in the network from stage k's node to stage k+1's
    (min-hop with ``routing: shortest``); with ``labels_at`` the label route joins the last
    stage to the label node. Memory is *not* checked here: an over-full plan is still a plan,
    reported infeasible by :func:`pipesl.cost.evaluate`.

    Raises
    ------
    PlanError
        Naming the first broken rule.
    """
    net, tr = problem.network, problem.training
    L = problem.model.num_layers
    if not plan.stages:
        raise _fail("plan.stages", "is empty; a plan needs at least one stage")
    expected_first = 1
    used: dict[str, int] = {}
    for k, s in enumerate(plan.stages):
        f = f"plan.stages[{k}]"
        if s.node not in net.node_index:
            raise _fail(f"{f}.node", f"{s.node!r} is not a node of the network")
        if not net.node(s.node).can_compute:
            raise _fail(f"{f}.node", f"{s.node!r} cannot compute (a relay)")
        if s.node in used:
            raise _fail(f"{f}.node", f"{s.node!r} already computes stage {used[s.node] + 1};"
                        " no node computes two stages")
        used[s.node] = k
        if s.first_layer != expected_first:
            raise _fail(f"{f}.first_layer", f"is {s.first_layer}; must be {expected_first}"
                        " (stages cover layers 1..L in order)")
        if s.last_layer < s.first_layer:
            raise _fail(f"{f}.last_layer", f"is {s.last_layer}; must be >= first_layer "
                        f"{s.first_layer}")
        expected_first = s.last_layer + 1
    if plan.stages[-1].last_layer != L:
        raise _fail(f"plan.stages[{len(plan.stages) - 1}].last_layer",
                    f"is {plan.stages[-1].last_layer}; the last stage must end at layer {L}")
    if plan.stages[0].node != tr.source:
        raise _fail("plan.stages[0].node", f"{plan.stages[0].node!r} is not the source "
                    f"{tr.source!r}; stage 1 runs on the data owner")
    if len(plan.routes) != len(plan.stages) - 1:
        raise _fail("plan.routes", f"has {len(plan.routes)} routes; {len(plan.stages)} stages "
                    f"need {len(plan.stages) - 1}")
    for k, route in enumerate(plan.routes):
        _check_route(problem, route, plan.stages[k].node, plan.stages[k + 1].node,
                     f"plan.routes[{k}]")
    last = plan.stages[-1].node
    if tr.labels_at is None:
        if plan.label_route is not None and len(plan.label_route) > 1:
            raise _fail("plan.label_route", "is given but training.labels_at is null")
    elif plan.label_route is None or len(plan.label_route) == 0:
        if last != tr.labels_at:
            raise _fail("plan.label_route", f"is missing; training.labels_at is "
                        f"{tr.labels_at!r} and the last stage runs on {last!r}")
    else:
        _check_route(problem, plan.label_route, last, tr.labels_at, "plan.label_route")
    b = plan.micro_batch_size
    if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= tr.batch_size:
        raise _fail("plan.micro_batch_size", f"is {b!r}; must be an integer in "
                    f"[1, batch_size={tr.batch_size}]")
    return plan


def _check_route(problem: Problem, route: Sequence[str], start: str, end: str, field: str) -> None:
    net = problem.network
    got = _short(list(route), 80)
    if len(route) == 0 or route[0] != start or route[-1] != end:
        raise _fail(field, f"must run from {start!r} to {end!r}; got {got}")
    if start != end and len(route) < 2:
        raise _fail(field, f"must run from {start!r} to {end!r}; got {got}")
    if len(set(route)) != len(route):
        seen: set[str] = set()
        for twice in route:
            if twice in seen:
                break
            seen.add(twice)
        raise _fail(field, f"{got} visits a node twice ({twice!r}); a route is a simple path")
    for i, node in enumerate(route):
        if node not in net.node_index:
            raise _fail(f"{field}[{i}]", f"{node!r} is not a node of the network")
    for u, v in pairwise(route):
        if net.link_index(u, v) is None:
            raise _fail(field, f"hop {u!r} -> {v!r} is not a link of the network")
    if problem.training.routing == "shortest" and len(route) > 1:
        hops = nx.shortest_path_length(net.graph, start, end)
        if len(route) - 1 != hops:
            raise _fail(field, f"has {len(route) - 1} hops but training.routing is 'shortest'"
                        f" and {start!r} -> {end!r} takes {hops}")


def plan_label(plan: Plan) -> str:
    """``mcu:1 pi2:2-5 via mcu-mesh1-pi1-pi2``: stages with their layers, then the routes.

    Examples
    --------
    >>> plan_label(Plan((Stage("a", 1, 2), Stage("b", 3, 3)), (("a", "r", "b"),), 4))
    'a:1-2 b:3 via a-r-b'
    """
    stages = " ".join(f"{s.node}:{s.first_layer}" if s.first_layer == s.last_layer
                      else f"{s.node}:{s.first_layer}-{s.last_layer}" for s in plan.stages)
    routes = ", ".join("-".join(r) for r in plan.all_routes() if len(r) > 1)
    return f"{stages} via {routes}" if routes else stages


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The decision fields of the SPEC plan JSON (costs are added by ``cost.plan_document``)."""
    return {
        "micro_batch_size": plan.micro_batch_size,
        "stages": [{"node": s.node, "first_layer": s.first_layer, "last_layer": s.last_layer}
                   for s in plan.stages],
        "routes": [list(r) for r in plan.routes],
        "label_route": None if plan.label_route is None else list(plan.label_route),
    }


def _int_field(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProblemError(field, "must be an integer", value)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ProblemError(field, "must be an integer", value)
    return int(value)


def _route_field(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ProblemError(field, "must be a list of node ids", value)
    out = []
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, str | int):
            raise ProblemError(f"{field}[{i}]", "must be a node id (string)", x)
        out.append(str(x))
    return tuple(out)


PLAN_FIELDS = ("micro_batch_size", "stages", "routes", "label_route", "batch_size")
"""The decision fields of a plan document (``batch_size`` is checked against the problem)."""
DERIVED_FIELDS = ("objective_s", "analytic_s", "objective", "num_micro_batches",
                  "first_micro_batch_s", "bottleneck_s",
                  "bottleneck_resource", "resource_loads", "solver", "feasible", "violations",
                  "memory", "stage_times_s")
"""Fields that ``cost.plan_document`` writes and reading ignores (they are recomputed)."""
_STAGE_FIELDS = ("node", "first_layer", "last_layer")


def _check_keys(doc: Mapping[Any, Any], allowed: Sequence[str], field: str,
                hint: str) -> None:
    for key in doc:
        if key not in allowed:
            label = key if isinstance(key, str) and key.isprintable() and len(key) <= 60 \
                else repr(key)[:60]
            raise ProblemError(f"{field}.{label}", f"is not a known field of a plan; {hint}")


def plan_from_dict(doc: Any, problem: Problem | None = None, name: str = "plan") -> Plan:
    """Read the decision fields of a SPEC plan JSON object.

    Derived fields (``objective_s``, loads, ``solver`` ...) are ignored: they are recomputed.
    Any other key is an error (a misspelt ``micro_batch_sise`` must not fall back silently).
    With ``problem`` given, a missing ``micro_batch_size`` falls back to the problem's fixed
    one, and ``batch_size`` must match the problem's.
    """
    if not isinstance(doc, Mapping):
        raise ProblemError(name, "must be a JSON object with stages, routes and "
                           "micro_batch_size", doc)
    _check_keys(doc, PLAN_FIELDS + DERIVED_FIELDS, name,
                f"the decisions are {', '.join(PLAN_FIELDS)} (the fields pipesl derives, such"
                " as objective_s, are ignored)")
    stages_raw = doc.get("stages")
    if isinstance(stages_raw, str | bytes) or not isinstance(stages_raw, Sequence):
        raise ProblemError(f"{name}.stages", "must be a list of {node, first_layer, last_layer}",
                           stages_raw)
    stages = []
    for k, s in enumerate(stages_raw):
        f = f"{name}.stages[{k}]"
        if not isinstance(s, Mapping):
            raise ProblemError(f, "must be an object {node, first_layer, last_layer}", s)
        _check_keys(s, _STAGE_FIELDS, f, f"expected {', '.join(_STAGE_FIELDS)}")
        for key in ("node", "first_layer", "last_layer"):
            if s.get(key) is None:
                raise ProblemError(f"{f}.{key}", "is missing; it is required")
        node = s["node"]
        if isinstance(node, bool) or not isinstance(node, str | int):
            raise ProblemError(f"{f}.node", "must be a node id (string)", node)
        stages.append(Stage(str(node), _int_field(s["first_layer"], f"{f}.first_layer"),
                            _int_field(s["last_layer"], f"{f}.last_layer")))
    routes_raw = doc.get("routes", [])
    if routes_raw is None:
        routes_raw = []
    if isinstance(routes_raw, str | bytes) or not isinstance(routes_raw, Sequence):
        raise ProblemError(f"{name}.routes", "must be a list of routes", routes_raw)
    routes = tuple(_route_field(r, f"{name}.routes[{k}]") for k, r in enumerate(routes_raw))
    label_raw = doc.get("label_route")
    label = None if label_raw is None else _route_field(label_raw, f"{name}.label_route")
    b_raw = doc.get("micro_batch_size")
    if b_raw is None:
        fixed = problem.training.micro_batch_size if problem is not None else None
        if fixed is None:
            raise ProblemError(f"{name}.micro_batch_size", "is missing; it is required")
        b = fixed
    else:
        b = _int_field(b_raw, f"{name}.micro_batch_size")
    if problem is not None:
        batch = doc.get("batch_size")
        if batch is not None and _int_field(batch, f"{name}.batch_size") != \
                problem.training.batch_size:
            raise ProblemError(f"{name}.batch_size", f"does not match the problem's "
                               f"training.batch_size {problem.training.batch_size}", batch)
        if not 1 <= b <= problem.training.batch_size:
            raise ProblemError(f"{name}.micro_batch_size", f"must be between 1 and batch_size "
                               f"({problem.training.batch_size})", b)
    return Plan(tuple(stages), routes, b, label)


@dataclass(frozen=True)
class OwnersPlan:
    """One single-source :class:`Plan` per data owner, in owner order.

    ``plans[i]`` is a plan of ``problem.owner_problem(i)``; how the owners share time on
    resources (``parallel``/``sequential``) and model state (``per-owner``/``shared``) is the
    problem's ``training.owners`` and ``training.replicas`` (docs/owners.md).
    """

    plans: tuple[Plan, ...]

    @property
    def num_owners(self) -> int:
        """How many owners the plan covers."""
        return len(self.plans)

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> Plan:
        return self.plans[i]

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)


def _in_owner(exc: PlanError, i: int) -> PlanError:
    """``plan.stages[1].node: ...`` of owner i's plan -> ``plan.owners[1].stages[1].node: ...``."""
    text = str(exc)
    if text.startswith("plan."):
        text = f"plan.owners[{i}].{text[len('plan.'):]}"
    else:
        text = f"plan.owners[{i}]: {text}"
    return PlanError(text)


def validate_owners_plan(problem: Problem, plan: OwnersPlan) -> OwnersPlan:
    """Check that ``plan`` is a valid plan of the (multi-owner) ``problem``.

    One plan per owner, each valid for ``problem.owner_problem(i)`` (:func:`validate_plan`;
    no stage on another owner's node); with ``training.replicas: shared`` every owner cuts
    after the same layer and the stages after the cut (nodes and layer ranges) are the same.

    Raises
    ------
    PlanError
        Naming the first broken rule (``plan.owners[i]....``).
    """
    owners = problem.owners
    if len(plan.plans) != len(owners):
        raise _fail("plan.owners", f"has {len(plan.plans)} plans; the problem has "
                    f"{len(owners)} data owners (one plan each, in owner order)")
    owner_of = {o.node: i for i, o in enumerate(owners)}
    for i, p in enumerate(plan.plans):
        for k, s in enumerate(p.stages):
            j = owner_of.get(s.node, i)
            if j != i:
                raise _fail(f"plan.owners[{i}].stages[{k}].node", f"{s.node!r} is the node of "
                            f"data owner {j} ({owners[j].label}); an owner's tensors never "
                            "reach another owner's node")
        try:
            validate_plan(problem.owner_problem(i), p)
        except PlanError as exc:
            raise _in_owner(exc, i) from None
    if problem.training.replicas == "shared" and len(plan.plans) > 1:
        first = plan.plans[0]
        for i, p in enumerate(plan.plans[1:], start=1):
            if p.stages[0].last_layer != first.stages[0].last_layer:
                raise _fail(f"plan.owners[{i}].stages[0].last_layer",
                            f"is {p.stages[0].last_layer}; with training.replicas: shared "
                            f"every owner cuts after the same layer (owner 0: "
                            f"{first.stages[0].last_layer})")
            if p.stages[1:] != first.stages[1:]:
                raise _fail(f"plan.owners[{i}].stages", "differ from owner 0's after the cut; "
                            "with training.replicas: shared the server-side stages (nodes "
                            "and layers) are the same for every owner")
    return plan


OWNERS_FIELDS = ("owners", "mode", "replicas")
"""The fields of a multi-owner plan document."""
OWNERS_DERIVED_FIELDS = ("makespan_s", "lower_bound_s", "gap", "optimal", "method", "solver",
                         "owner_makespans_s", "seconds", "baselines", "num_owners", "memory",
                         "feasible", "violations", "objective", "objective_s", "busy_s",
                         "utilisation", "owner_labels")
"""Fields pipesl writes into a multi-owner plan document and reading ignores."""


def owners_plan_to_dict(problem: Problem, plan: OwnersPlan) -> dict[str, Any]:
    """The decision fields of a multi-owner plan document.

    ``{"owners": [<plan_to_dict of owner 0>, ...], "mode": ..., "replicas": ...}``; each
    owner's entry also names its owner (``owner``, the label) and its ``batch_size``.
    """
    entries = []
    for owner, p in zip(problem.owners, plan.plans, strict=True):
        entries.append({"owner": owner.label, "batch_size": owner.batch_size,
                        **plan_to_dict(p)})
    return {"owners": entries, "mode": problem.training.owners_mode,
            "replicas": problem.training.replicas}


def owners_plan_from_dict(doc: Any, problem: Problem | None = None,
                          name: str = "plan") -> OwnersPlan:
    """Read a multi-owner plan document (see :func:`owners_plan_to_dict`).

    With ``problem`` given, the number of owners, ``mode`` and ``replicas`` must match it and
    each entry is read against that owner's problem (:func:`plan_from_dict`).
    """
    if not isinstance(doc, Mapping):
        raise ProblemError(name, "must be a JSON object with owners", doc)
    _check_keys(doc, OWNERS_FIELDS + OWNERS_DERIVED_FIELDS, name,
                f"a multi-owner plan has {', '.join(OWNERS_FIELDS)} (and fields pipesl "
                "derives, which are ignored)")
    raw = doc.get("owners")
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
        raise ProblemError(f"{name}.owners", "must be a non-empty list of plans, one per data "
                           "owner", raw)
    if problem is not None:
        if len(raw) != problem.num_owners:
            raise ProblemError(f"{name}.owners", f"has {len(raw)} plans; the problem has "
                               f"{problem.num_owners} data owners")
        for key, want in (("mode", problem.training.owners_mode),
                          ("replicas", problem.training.replicas)):
            got = doc.get(key)
            if got is not None and got != want:
                field = "owners" if key == "mode" else key
                raise ProblemError(f"{name}.{key}", f"does not match the problem's "
                                   f"training.{field} {want!r}", got)
    plans = []
    for i, entry in enumerate(raw):
        field = f"{name}.owners[{i}]"
        if isinstance(entry, Mapping):
            entry = {k: v for k, v in entry.items() if k != "owner"}
        sub = problem.owner_problem(i) if problem is not None else None
        plans.append(plan_from_dict(entry, sub, field))
    return OwnersPlan(tuple(plans))


def load_plan(path: str | Path, problem: Problem | None = None) -> Plan | OwnersPlan:
    """Load a plan JSON (or YAML) file; see :func:`plan_from_dict`.

    A document with ``owners`` is a multi-owner plan (:func:`owners_plan_from_dict`) and
    gives an :class:`OwnersPlan` (with a one-owner ``problem``, its single plan). A
    multi-owner ``problem`` needs such a document.
    """
    from pipesl.problem.io import load_document

    doc = load_document(path)
    if isinstance(doc, Mapping) and "owners" in doc:
        plan = owners_plan_from_dict(doc, problem, f"{path}: plan")
        if problem is not None and not problem.is_multi_owner:
            return plan.plans[0]
        return plan
    if problem is not None and problem.is_multi_owner:
        raise ProblemError(f"{path}: plan", f"is a single-owner plan; the problem has "
                           f"{problem.num_owners} data owners (a multi-owner plan lists one "
                           "plan per owner under owners)")
    return plan_from_dict(doc, problem, f"{path}: plan")


def load_single_plan(path: str | Path, problem: Problem | None = None,
                     command: str = "this command") -> Plan:
    """:func:`load_plan` for callers that take one owner's plan only.

    Raises
    ------
    ProblemError
        The file holds a plan for several data owners.
    """
    plan = load_plan(path, problem)
    if isinstance(plan, OwnersPlan):
        raise ProblemError(f"{path}: plan", f"is a plan for {plan.num_owners} data owners; "
                           f"{command} takes a single-owner plan")
    return plan


def dump_plan(document: Mapping[str, Any], path: str | Path) -> None:
    """Write a plan document (e.g. from ``cost.plan_document``) as JSON."""
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
