"""Mappings (parsed JSON/YAML) -> validated problem types, one field at a time.

Every check raises :class:`~pipesl.exceptions.ProblemError` naming the dotted field, the value
and the rule. Cross-field checks (ids that must exist, reachability) live in
:mod:`pipesl.problem.validate`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipesl.exceptions import ProblemError, _short
from pipesl.problem.types import (
    DUPLEX_MODES,
    OWNERS_MODES,
    REPLICAS_MODES,
    ROUTING_MODES,
    SCHEDULES,
    ChainModel,
    DataOwner,
    Layer,
    Link,
    Network,
    Node,
    TrainingSpec,
)
from pipesl.units import parse_quantity

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_QUANTITY",
    "MIN_RATE",
    "close_matches",
    "model_from_dict",
    "network_from_dict",
    "owner_from_dict",
    "training_from_dict",
]

MAX_QUANTITY = 1e30
"""Largest finite quantity accepted in any field (keeps every product finite)."""
MIN_RATE = 1 / MAX_QUANTITY
"""Smallest positive rate (a node's ``flops``, a link's ``bandwidth``): the cost model divides
by rates, and a rate near the float minimum (5e-324) would make stage times infinite."""
MAX_BATCH_SIZE = 1_000_000
"""Largest batch size accepted (the planner's work grows with sqrt(B))."""


def close_matches(name: object, known: Sequence[str]) -> list[str]:
    """The known field names that ``name`` looks like a misspelling of (``memroy`` -> memory,
    ``Latency`` -> latency); none for names that are merely different (``label``, ``color``,
    ``Latitude``)."""
    if not isinstance(name, str) or name in known:
        return []
    lowered = {k.lower(): k for k in known}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=2,
                                                          cutoff=0.75)]


def unknown_field_rule(name: object, known: Sequence[str], foreign: bool = False) -> str | None:
    """The rule an unknown key breaks, or None when a foreign graph file may carry it.

    In pipesl's own files every unknown key is refused; in foreign graph files (GraphML,
    node-link JSON) other attributes are ignored unless they look like a misspelt SPEC name,
    which would otherwise silently take its default.
    """
    matches = close_matches(name, known)
    hint = f"did you mean {' or '.join(matches)}? " if matches else ""
    if foreign:
        if not matches:
            return None
        return (f"is not a known field; {hint}(other attributes of a graph file are ignored, "
                "but one this close to a SPEC name would silently take its default)")
    return f"is not a known field; {hint}expected one of {', '.join(known)}"


class Fields:
    """Reads the fields of one mapping, rejecting unknown keys and naming each field.

    Parameters
    ----------
    data : object
        The value that must be a mapping.
    path : str
        Its dotted path, e.g. ``network.nodes[2]``.
    allowed : sequence of str
        The keys it may have.
    strict : bool
        Whether unknown keys are an error (True for pipesl's own files; False for foreign
        graph formats whose nodes carry extra attributes: those are ignored, except a key that
        looks like a misspelt field, see :func:`unknown_field_rule`).
    """

    def __init__(self, data: object, path: str, allowed: Sequence[str], strict: bool = True):
        if not isinstance(data, Mapping):
            if data is None and not path:  # an empty file (YAML reads it as null)
                raise ProblemError(path, f"is empty; expected a mapping with keys "
                                   f"{', '.join(allowed)}")
            raise ProblemError(path, f"must be a mapping with keys {', '.join(allowed)}", data)
        self.data = data
        self.path = path
        for key in data:
            if key not in allowed:
                rule = unknown_field_rule(key, allowed, foreign=not strict)
                if rule is not None:
                    raise ProblemError(self.sub(_key_name(key)), rule)

    def sub(self, name: str) -> str:
        """Dotted path of a child field."""
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        """True when the field is present and not null."""
        return self.data.get(name) is not None

    def raw(self, name: str, required: bool = False) -> Any:
        """The raw value (None when absent)."""
        if name not in self.data or self.data[name] is None:
            if required:
                raise ProblemError(self.sub(name), "is missing; it is required")
            return None
        return self.data[name]

    def quantity(
        self,
        name: str,
        kind: str,
        default: float | None = None,
        *,
        positive: bool = False,
        allow_inf: bool = False,
        rate: bool = False,
    ) -> float:
        """A non-negative (or positive) finite quantity, units allowed.

        ``rate``: a divisor of the cost model; a positive value below :data:`MIN_RATE` is
        refused.
        """
        value = self.raw(name, required=default is None)
        if value is None:
            assert default is not None
            return default
        field = self.sub(name)
        if allow_inf and isinstance(value, str) and value.strip().lower() in ("inf", ".inf"):
            return math.inf
        number = parse_quantity(value, kind, field)
        if math.isinf(number) and not (allow_inf and number > 0):
            raise ProblemError(field, "is infinite; must be a finite number", value)
        if number < 0 or (positive and number == 0):
            rule = "must be > 0" if positive else "must be >= 0"
            raise ProblemError(field, f"is {'zero' if number == 0 else 'negative'}; {rule}", value)
        if number > MAX_QUANTITY and not math.isinf(number):
            raise ProblemError(field, f"is too large; must be at most {MAX_QUANTITY:g}", value)
        if rate and 0 < number < MIN_RATE:
            rule = "" if positive else "0 (a relay) or "
            raise ProblemError(field, f"is too small; must be {rule}at least {MIN_RATE:g}", value)
        return number + 0.0  # -0.0 -> 0.0

    def number(self, name: str, default: float) -> float:
        """A plain non-negative finite number (no unit)."""
        value = self.raw(name)
        if value is None:
            return default
        field = self.sub(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProblemError(field, "must be a number", value)
        if not _finite(value) or value < 0 or value > MAX_QUANTITY:
            raise ProblemError(field, f"must be a finite number in [0, {MAX_QUANTITY:g}]", value)
        return float(value)

    def integer(self, name: str, default: int | None = None, *, minimum: int = 1,
                maximum: int | None = None, nullable: bool = False) -> int | None:
        """An integer in [minimum, maximum]; integral floats such as 128.0 are accepted."""
        value = self.raw(name, required=default is None and not nullable)
        if value is None:
            return default
        field = self.sub(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProblemError(field, "must be an integer", value)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ProblemError(field, "must be an integer", value)
        number = int(value)
        if number < minimum:
            raise ProblemError(field, f"must be >= {minimum}", value)
        if maximum is not None and number > maximum:
            raise ProblemError(field, f"must be <= {maximum}", value)
        return number

    def text(self, name: str) -> str | None:
        """Optional free text (a name or a description); a number (``name: 2024``) is text."""
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ProblemError(self.sub(name), "must be a string", value)
        return str(value)

    def string(self, name: str, default: str | None = None) -> str:
        """A non-empty string; integers are accepted as ids and converted."""
        value = self.raw(name, required=default is None)
        if value is None:
            assert default is not None
            return default
        return as_id(value, self.sub(name))

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        """One of ``choices``."""
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str) or value not in choices:
            raise ProblemError(self.sub(name), f"must be one of {', '.join(choices)}", value)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        """A true/false flag."""
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProblemError(self.sub(name), "must be true or false", value)
        return value

    def sequence(self, name: str, required: bool = True) -> Sequence[Any]:
        """A list."""
        value = self.raw(name, required=required)
        if value is None:
            return []
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise ProblemError(self.sub(name), "must be a list", value)
        return value


def _key_name(key: object) -> str:
    """A mapping key as a field name: plain keys as they are, odd ones quoted and truncated."""
    text = str(key) if isinstance(key, str | int | float | bool) or key is None else repr(key)
    if len(text) > 60 or not text.isprintable() or not text.strip():
        text = _short(text)
    return text


def _finite(value: float) -> bool:
    """``math.isfinite`` that is False (not OverflowError) for ints beyond the float range."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def as_id(value: object, field: str) -> str:
    """A node or layer id: a non-empty string (integers are converted to strings)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ProblemError(field, "must be a non-empty string", value)
    text = str(value)
    if not text.strip():
        raise ProblemError(field, "must be a non-empty string", value)
    if len(text) > 200:
        raise ProblemError(field, "is longer than 200 characters", value)
    return text


_NODE_FIELDS = ("id", "flops", "memory", "overhead", "compute", "kind", "pos")
_LINK_FIELDS = ("source", "target", "bandwidth", "latency", "duplex")


def node_from_dict(data: object, path: str, strict: bool = True) -> Node:
    """Parse one node (SPEC section 2)."""
    f = Fields(data, path, _NODE_FIELDS, strict)
    node_id = f.string("id")
    flops = f.quantity("flops", "flop_rate", 0.0, rate=True)
    compute = f.boolean("compute", flops > 0)
    if compute and flops == 0 and f.has("compute"):
        raise ProblemError(f.sub("flops"), "must be > 0 on a node with compute: true", 0)
    memory = f.quantity("memory", "bytes", math.inf, allow_inf=True)
    overhead = f.quantity("overhead", "seconds", 0.0)
    kind = f.raw("kind")
    if kind is not None and not isinstance(kind, str):
        raise ProblemError(f.sub("kind"), "must be a string", kind)
    pos = f.raw("pos")
    if pos is not None:
        ok = (isinstance(pos, Sequence) and not isinstance(pos, str) and len(pos) == 2
              and all(isinstance(c, int | float) and not isinstance(c, bool)
                      and _finite(c) for c in pos))
        if not ok:
            raise ProblemError(f.sub("pos"), "must be a list of two finite numbers [x, y]", pos)
        pos = (float(pos[0]), float(pos[1]))
    return Node(node_id, flops, memory, overhead, compute, kind or "", pos)


def link_from_dict(data: object, path: str, strict: bool = True) -> Link:
    """Parse one link (SPEC section 2)."""
    f = Fields(data, path, _LINK_FIELDS, strict)
    return Link(
        source=f.string("source"),
        target=f.string("target"),
        bandwidth=f.quantity("bandwidth", "bandwidth", positive=True, rate=True),
        latency=f.quantity("latency", "seconds", 0.0),
        duplex=f.choice("duplex", DUPLEX_MODES, "half"),  # type: ignore[arg-type]
    )


def network_from_dict(data: object, path: str = "network", strict: bool = True) -> Network:
    """Parse the ``network`` section: ``nodes`` and ``links`` lists.

    Checks ids are unique, links join known, distinct nodes, and no pair is linked twice.
    """
    f = Fields(data, path, ("nodes", "links", "name", "description"), strict)
    if strict:
        f.text("name")
        f.text("description")
    raw_nodes = f.sequence("nodes")
    if not raw_nodes:
        raise ProblemError(f.sub("nodes"), "is empty; a network needs at least one node")
    nodes = tuple(node_from_dict(n, f"{f.sub('nodes')}[{i}]", strict)
                  for i, n in enumerate(raw_nodes))
    seen: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.id in seen:
            raise ProblemError(f"{f.sub('nodes')}[{i}].id",
                               f"is a duplicate id (also nodes[{seen[n.id]}])", n.id)
        seen[n.id] = i
    links = tuple(link_from_dict(e, f"{f.sub('links')}[{i}]", strict)
                  for i, e in enumerate(f.sequence("links", required=False)))
    pairs: dict[frozenset[str], int] = {}
    for i, e in enumerate(links):
        lp = f"{f.sub('links')}[{i}]"
        for end in ("source", "target"):
            if getattr(e, end) not in seen:
                raise ProblemError(f"{lp}.{end}", "is not the id of a node", getattr(e, end))
        if e.source == e.target:
            raise ProblemError(lp, f"is a self-loop on {e.source!r}; a link joins two nodes")
        if e.ends in pairs:
            raise ProblemError(
                lp, f"duplicates links[{pairs[e.ends]}] between {e.source!r} and {e.target!r};"
                " give one link per pair (bandwidth applies to each direction)")
        pairs[e.ends] = i
    return Network(nodes, links)


_LAYER_FIELDS = ("name", "fwd_flops", "bwd_flops", "out_bytes", "param_bytes", "act_bytes")


def layer_from_dict(data: object, path: str) -> Layer:
    """Parse one layer; ``bwd_flops`` defaults to 2 x forward, ``act_bytes`` to ``out_bytes``."""
    f = Fields(data, path, _LAYER_FIELDS)
    fwd = f.quantity("fwd_flops", "flops")
    out = f.quantity("out_bytes", "bytes")
    return Layer(
        name=f.string("name"),
        fwd_flops=fwd,
        bwd_flops=f.quantity("bwd_flops", "flops", 2.0 * fwd),
        out_bytes=out,
        param_bytes=f.quantity("param_bytes", "bytes", 0.0),
        act_bytes=f.quantity("act_bytes", "bytes", out),
    )


def model_from_dict(data: object, path: str = "model") -> ChainModel:
    """Parse the ``model`` section (a model profile)."""
    f = Fields(data, path, ("name", "input_bytes", "layers", "description", "source"))
    f.text("description")
    f.text("source")
    raw_layers = f.sequence("layers")
    if not raw_layers:
        raise ProblemError(f.sub("layers"), "is empty; a model needs at least one layer")
    layers = tuple(layer_from_dict(x, f"{f.sub('layers')}[{i}]") for i, x in enumerate(raw_layers))
    return ChainModel(
        name=f.string("name", "model"),
        input_bytes=f.quantity("input_bytes", "bytes"),
        layers=layers,
    )


_TRAINING_FIELDS = ("source", "sources", "batch_size", "micro_batch_size", "schedule",
                    "state_factor", "routing", "labels_at", "owners", "replicas")
_OWNER_FIELDS = ("node", "batch_size", "micro_batch_size", "labels_at", "name")


def training_from_dict(data: object, path: str = "training") -> TrainingSpec:
    """Parse the ``training`` section; range checks against the network are in validate.

    Either ``source`` (one data owner) or ``sources`` (a list of owners, see
    :func:`owner_from_dict`) is required, not both.
    """
    f = Fields(data, path, _TRAINING_FIELDS)

    def common() -> dict[str, Any]:
        return {
            "schedule": f.choice("schedule", SCHEDULES, "gpipe"),
            "state_factor": f.number("state_factor", 3.0),
            "routing": f.choice("routing", ROUTING_MODES, "optimize"),
            "owners_mode": f.choice("owners", OWNERS_MODES, "parallel"),
            "replicas": f.choice("replicas", REPLICAS_MODES, "per-owner"),
        }

    if f.has("sources"):
        if f.has("source"):
            raise ProblemError(f.sub("sources"), "is given beside source; give one data owner "
                               "as source or a list of them as sources, not both")
        if f.has("labels_at"):
            raise ProblemError(f.sub("labels_at"), "is given beside sources; give labels_at "
                               "per entry of sources (each owner's own label node)")
        default_batch = f.integer("batch_size", nullable=True, maximum=MAX_BATCH_SIZE)
        default_micro = f.integer("micro_batch_size", nullable=True,
                                  maximum=default_batch or MAX_BATCH_SIZE)
        raw = f.sequence("sources")
        if not raw:
            raise ProblemError(f.sub("sources"), "is empty; give at least one data owner")
        owners = tuple(owner_from_dict(x, f"{f.sub('sources')}[{i}]", default_batch,
                                       default_micro) for i, x in enumerate(raw))
        first = owners[0]
        return TrainingSpec(source=first.node, batch_size=first.batch_size, sources=owners,
                            **common())
    batch = f.integer("batch_size", maximum=MAX_BATCH_SIZE)
    assert batch is not None
    micro = f.integer("micro_batch_size", nullable=True, maximum=batch)
    labels_at = f.raw("labels_at")
    source = f.string("source")
    options = common()
    return TrainingSpec(
        source=source,
        batch_size=batch,
        micro_batch_size=micro,
        labels_at=None if labels_at is None else as_id(labels_at, f.sub("labels_at")),
        **options,
    )


def owner_from_dict(data: object, path: str, default_batch: int | None = None,
                    default_micro: int | None = None) -> DataOwner:
    """Parse one entry of ``training.sources``: a mapping, or a bare node id.

    Parameters
    ----------
    data : object
        ``{node, batch_size, micro_batch_size, labels_at, name}`` or a node id.
    path : str
        Its dotted path, e.g. ``training.sources[1]``.
    default_batch, default_micro : int or None
        ``training.batch_size`` and ``training.micro_batch_size``, the defaults of an entry
        that gives none.
    """
    if isinstance(data, str | int) and not isinstance(data, bool):
        data = {"node": data}
    f = Fields(data, path, _OWNER_FIELDS)
    node = f.string("node")
    if f.has("batch_size"):
        batch = f.integer("batch_size", maximum=MAX_BATCH_SIZE)
    elif default_batch is not None:
        batch = default_batch
    else:
        raise ProblemError(f.sub("batch_size"), "is missing; give it here or as "
                           "training.batch_size (the default of every owner)")
    assert batch is not None
    if f.has("micro_batch_size"):
        micro = f.integer("micro_batch_size", nullable=True, maximum=batch)
    else:
        micro = default_micro
        if micro is not None and micro > batch:
            raise ProblemError(f.sub("micro_batch_size"), f"(training.micro_batch_size) must "
                               f"be <= this owner's batch_size {batch}", micro)
    labels_at = f.raw("labels_at")
    return DataOwner(
        node=node,
        batch_size=batch,
        micro_batch_size=micro,
        labels_at=None if labels_at is None else as_id(labels_at, f.sub("labels_at")),
        name=f.text("name") or "",
    )
