"""Scripted changes of the network during a run: links that fade, nodes that slow or leave.

The emulator (:mod:`pipesl.runtime.conditions`) plays such a script so that conditions change
in the middle of training *without the planner knowing*: a bandwidth change is applied by the
links' pacing from its iteration on and must be measured to be noticed; a departure kills the
node's worker. Events are keyed by the **global** iteration number (0-based), so a script
survives the relaunches of an adaptive run.

File format (YAML or JSON): a list of events, each a mapping::

    - {iteration: 10, link: [mcu, mesh1], bandwidth_factor: 0.1}   # from iteration 10 on
    - {iteration: 4, until: 5, link: [mcu, mesh1], bandwidth_factor: 0.5}   # one iteration
    - {iteration: 0, link: [mesh1, pi1], jitter: 0.3}              # every transfer x U[0.7, 1.3]
    - {iteration: 8, node: pi1, flops_factor: 0.5}                 # pi1 computes at half speed
    - {iteration: 20, node_leaves: pi2}                            # pi2 leaves for good

Factors are relative to the problem's nominal figures (a later event on the same link or
node replaces an earlier one; ``bandwidth_factor: 1`` restores it); ``latency_factor``
scales a link's latency the same way; ``jitter: x`` multiplies each transfer (or pass) by an
independent, seeded uniform factor in ``[1 - x, 1 + x]``; ``until`` (exclusive) makes an
event transient. A departure is permanent. The source holds the data and cannot leave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.problem.types import Network, Problem
from pipesl.problem.validate import validate_problem

__all__ = ["LinkState", "NetworkEvent", "NetworkScript", "NodeState", "load_network_events",
           "parse_network_events", "without_nodes"]

_LINK_FIELDS = ("bandwidth_factor", "latency_factor", "jitter")
_NODE_FIELDS = ("flops_factor", "jitter")
_KEYS = ("iteration", "until", "link", "node", "node_leaves", *_LINK_FIELDS, "flops_factor")


@dataclass(frozen=True)
class NetworkEvent:
    """One scripted change (see the module docstring)."""

    iteration: int
    """The first (global, 0-based) iteration it applies to."""
    link: tuple[str, str] | None = None
    node: str | None = None
    leaves: bool = False
    """``node`` leaves the network for good."""
    bandwidth_factor: float | None = None
    latency_factor: float | None = None
    flops_factor: float | None = None
    jitter: float | None = None
    until: int | None = None
    """First iteration it no longer applies to (None: for good)."""

    def active(self, iteration: int) -> bool:
        """True when the event applies to ``iteration``."""
        return self.iteration <= iteration and (self.until is None or iteration < self.until)

    def describe(self) -> str:
        """``link mcu-mesh1 bandwidth x0.1 from iteration 10``."""
        if self.leaves:
            return f"{self.node} leaves at iteration {self.iteration}"
        what = (f"link {self.link[0]}-{self.link[1]}" if self.link is not None
                else f"node {self.node}")
        parts = [f"{name.split('_')[0]} x{value:g}" for name in
                 ("bandwidth_factor", "latency_factor", "flops_factor")
                 if (value := getattr(self, name)) is not None]
        if self.jitter is not None:
            parts.append(f"jitter ±{self.jitter:.0%}")
        span = (f"from iteration {self.iteration}" if self.until is None
                else f"in iterations {self.iteration}-{self.until - 1}")
        return f"{what} {', '.join(parts)} {span}"

    def to_dict(self) -> dict[str, Any]:
        """The event as written in a script file."""
        if self.leaves:
            return {"iteration": self.iteration, "node_leaves": self.node}
        doc: dict[str, Any] = {"iteration": self.iteration}
        if self.until is not None:
            doc["until"] = self.until
        if self.link is not None:
            doc["link"] = list(self.link)
        else:
            doc["node"] = self.node
        for name in ("bandwidth_factor", "latency_factor", "flops_factor", "jitter"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        return doc


@dataclass(frozen=True)
class LinkState:
    """A link's condition at one iteration, relative to its nominal figures."""

    bandwidth_factor: float = 1.0
    latency_factor: float = 1.0
    jitter: float = 0.0


@dataclass(frozen=True)
class NodeState:
    """A node's condition at one iteration, relative to its nominal figures."""

    flops_factor: float = 1.0
    jitter: float = 0.0


def _link_key(u: str, v: str) -> tuple[str, str]:
    return (u, v) if u <= v else (v, u)


@dataclass(frozen=True)
class NetworkScript:
    """An ordered list of :class:`NetworkEvent` (file order breaks ties)."""

    events: tuple[NetworkEvent, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.events)

    def state_at(self, iteration: int) -> tuple[dict[tuple[str, str], LinkState],
                                                 dict[str, NodeState]]:
        """Every link's and node's condition at ``iteration`` (only those that differ).

        Per field, the active event that started last wins (file order among equals).
        """
        order = sorted((e for e in self.events if e.active(iteration) and not e.leaves),
                       key=lambda e: e.iteration)
        links: dict[tuple[str, str], dict[str, float]] = {}
        nodes: dict[str, dict[str, float]] = {}
        for e in order:
            fields: tuple[str, ...]
            if e.link is not None:
                target = links.setdefault(_link_key(*e.link), {})
                fields = _LINK_FIELDS
            else:
                assert e.node is not None
                target = nodes.setdefault(e.node, {})
                fields = _NODE_FIELDS
            for name in fields:
                value = getattr(e, name)
                if value is not None:
                    target[name] = value
        return ({k: LinkState(**v) for k, v in links.items()},
                {k: NodeState(**v) for k, v in nodes.items()})

    def departure(self, node: str) -> int | None:
        """The iteration at which ``node`` leaves (None: it stays)."""
        times = [e.iteration for e in self.events if e.leaves and e.node == node]
        return min(times) if times else None

    def departed(self, iteration: int) -> tuple[str, ...]:
        """Nodes that have left by ``iteration`` (in file order)."""
        return tuple(dict.fromkeys(e.node for e in self.events
                                   if e.leaves and e.iteration <= iteration and e.node))

    def problem_at(self, problem: Problem, iteration: int, *, drop_departed: bool = True
                   ) -> Problem:
        """``problem`` as the network really is at ``iteration`` (the emulated truth).

        Bandwidths, latencies and FLOP/s scaled by the active factors (jitter aside); nodes
        that have left removed with their links (unless ``drop_departed`` is False).
        """
        links_state, nodes_state = self.state_at(iteration)
        net = problem.network
        links = tuple(replace(e, bandwidth=e.bandwidth * ls.bandwidth_factor,
                              latency=e.latency * ls.latency_factor)
                      if (ls := links_state.get(_link_key(e.source, e.target))) else e
                      for e in net.links)
        nodes = tuple(replace(n, flops=n.flops * ns.flops_factor)
                      if (ns := nodes_state.get(n.id)) else n for n in net.nodes)
        changed = replace(problem, network=replace(net, nodes=nodes, links=links))
        gone = self.departed(iteration) if drop_departed else ()
        return without_nodes(changed, gone) if gone else validate_problem(changed)

    def validate(self, problem: Problem, name: str = "network_events") -> NetworkScript:
        """Check that every event names links and nodes of ``problem``; return self.

        ``name`` prefixes the field in errors (the script's file, when read from one).

        Raises
        ------
        ProblemError
            Naming the event and the field.
        """
        net = problem.network
        for i, e in enumerate(self.events):
            where = f"{name}[{i}]"
            if e.link is not None and net.link_between(*e.link) is None:
                raise ProblemError(f"{where}.link", "is not a link of the network",
                                   list(e.link))
            if e.node is not None and e.node not in net.node_index:
                raise ProblemError(f"{where}.{'node_leaves' if e.leaves else 'node'}",
                                   "is not a node of the network", e.node)
            if e.leaves and e.node == problem.training.source:
                raise ProblemError(f"{where}.node_leaves", "is the source, which holds the "
                                   "data: it cannot leave", e.node)
        return self

    def to_list(self) -> list[dict[str, Any]]:
        """The script as written in a file."""
        return [e.to_dict() for e in self.events]


def without_nodes(problem: Problem, nodes: Sequence[str]) -> Problem:
    """``problem`` without ``nodes`` and their links (validated)."""
    gone = set(nodes)
    net = problem.network
    return validate_problem(replace(problem, network=Network(
        tuple(n for n in net.nodes if n.id not in gone),
        tuple(e for e in net.links if e.source not in gone and e.target not in gone))))


def _number(value: Any, where: str, *, low: float, high: float | None = None,
            low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ProblemError(where, "must be a number", value)
    bad = value <= low if low_open else value < low
    if bad or (high is not None and value > high):
        rule = (f"must be {'>' if low_open else '>='} {low:g}"
                + (f" and <= {high:g}" if high is not None else ""))
        raise ProblemError(where, rule, value)
    return float(value)


def _iteration(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProblemError(where, "must be an integer >= 0 (a global iteration number)", value)
    return value


def _event(doc: Any, where: str) -> NetworkEvent:
    if not isinstance(doc, Mapping):
        raise ProblemError(where, "must be a mapping such as {iteration: 10, link: [a, b], "
                           "bandwidth_factor: 0.1}", doc)
    unknown = [k for k in doc if k not in _KEYS]
    if unknown:
        raise ProblemError(f"{where}.{unknown[0]}", f"is not a field of a network event; "
                           f"valid fields: {', '.join(_KEYS)}")
    if "iteration" not in doc:
        raise ProblemError(f"{where}.iteration", "is missing")
    it = _iteration(doc["iteration"], f"{where}.iteration")
    until = doc.get("until")
    if until is not None:
        until = _iteration(until, f"{where}.until")
        if until <= it:
            raise ProblemError(f"{where}.until", f"must be after iteration ({it})", until)
    targets = [k for k in ("link", "node", "node_leaves") if k in doc]
    if len(targets) != 1:
        raise ProblemError(where, "needs exactly one of link, node, node_leaves")
    if "node_leaves" in doc:
        extra = [k for k in doc if k not in ("iteration", "node_leaves")]
        if extra:
            raise ProblemError(f"{where}.{extra[0]}", "does not apply to a departure (it is "
                               "permanent)")
        node = doc["node_leaves"]
        if not isinstance(node, str) or not node:
            raise ProblemError(f"{where}.node_leaves", "must be a node id", node)
        return NetworkEvent(it, node=node, leaves=True)
    values: dict[str, float] = {}
    allowed: tuple[str, ...]
    if "link" in doc:
        link = doc["link"]
        if (not isinstance(link, Sequence) or isinstance(link, str) or len(link) != 2
                or not all(isinstance(x, str) and x for x in link)):
            raise ProblemError(f"{where}.link", "must be a pair of node ids [u, v]", link)
        allowed = _LINK_FIELDS
    else:
        if not isinstance(doc["node"], str) or not doc["node"]:
            raise ProblemError(f"{where}.node", "must be a node id", doc["node"])
        allowed = _NODE_FIELDS
    for name in ("bandwidth_factor", "latency_factor", "flops_factor", "jitter"):
        if name not in doc:
            continue
        if name not in allowed:
            raise ProblemError(f"{where}.{name}", f"does not apply to a "
                               f"{'link' if 'link' in doc else 'node'}")
        if name == "jitter":
            values[name] = _number(doc[name], f"{where}.{name}", low=0.0, high=0.9,
                                   low_open=False)
        elif name == "latency_factor":
            values[name] = _number(doc[name], f"{where}.{name}", low=0.0, low_open=False)
        else:
            values[name] = _number(doc[name], f"{where}.{name}", low=0.0)
    if not values:
        raise ProblemError(where, f"changes nothing: give one of {', '.join(allowed)}")
    factors = {k: values.get(k) for k in ("bandwidth_factor", "latency_factor",
                                          "flops_factor", "jitter")}
    if "link" in doc:
        return NetworkEvent(it, link=(doc["link"][0], doc["link"][1]), until=until,
                            bandwidth_factor=factors["bandwidth_factor"],
                            latency_factor=factors["latency_factor"],
                            jitter=factors["jitter"])
    return NetworkEvent(it, node=doc["node"], until=until,
                        flops_factor=factors["flops_factor"], jitter=factors["jitter"])


def parse_network_events(doc: Any, name: str = "network_events") -> NetworkScript:
    """Read a list of event mappings (see the module docstring).

    Raises
    ------
    ProblemError
        Naming the event, the field and the rule.

    Examples
    --------
    >>> s = parse_network_events([{"iteration": 3, "link": ["a", "b"], "bandwidth_factor": 0.5}])
    >>> s.events[0].describe()
    'link a-b bandwidth x0.5 from iteration 3'
    """
    if isinstance(doc, Mapping) and set(doc) == {"events"}:
        doc = doc["events"]
    if not isinstance(doc, list):
        raise ProblemError(name, "must be a list of events (or a mapping with one key, "
                           "events)", doc)
    return NetworkScript(tuple(_event(e, f"{name}[{i}]") for i, e in enumerate(doc)))


def load_network_events(path: str | Path, problem: Problem | None = None) -> NetworkScript:
    """Read a script file (YAML or JSON) and check it against ``problem`` when given."""
    from pipesl.problem.io import load_document

    script = parse_network_events(load_document(path), str(path))
    return script.validate(problem, str(path)) if problem is not None else script
