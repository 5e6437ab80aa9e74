"""The problem's types: a network of nodes and links, a chain model, training options.

All quantities are SI floats (FLOP/s, bytes, bit/s, seconds); the loaders in
:mod:`pipesl.problem.io` parse unit strings and validate every field before these objects are
built, so code that receives a :class:`Problem` may rely on its invariants (SPEC section 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import networkx as nx

__all__ = [
    "DUPLEX_MODES",
    "OWNERS_MODES",
    "REPLICAS_MODES",
    "ROUTING_MODES",
    "SCHEDULES",
    "ChainModel",
    "DataOwner",
    "Duplex",
    "Layer",
    "Link",
    "Network",
    "Node",
    "OwnersMode",
    "Problem",
    "Replicas",
    "Routing",
    "Schedule",
    "TrainingSpec",
]

Duplex = Literal["half", "full"]
Schedule = Literal["gpipe", "1f1b", "1f1b-net"]
Routing = Literal["optimize", "shortest"]
DUPLEX_MODES: tuple[str, ...] = ("half", "full")
SCHEDULES: tuple[str, ...] = ("gpipe", "1f1b", "1f1b-net")
ROUTING_MODES: tuple[str, ...] = ("optimize", "shortest")
OwnersMode = Literal["parallel", "sequential"]
Replicas = Literal["per-owner", "shared"]
OWNERS_MODES: tuple[str, ...] = ("parallel", "sequential")
REPLICAS_MODES: tuple[str, ...] = ("per-owner", "shared")


@dataclass(frozen=True)
class Node:
    """A machine of the network: a device, an edge server, or a relay."""

    id: str
    """Unique name."""
    flops: float = 0.0
    """Sustained training FLOP/s; 0 for a relay."""
    memory: float = math.inf
    """Bytes available for model state and activations (unbounded when not given)."""
    overhead: float = 0.0
    """Seconds of fixed cost per forward pass and per backward pass (o_n)."""
    compute: bool = True
    """Whether the node may run a stage; relays have ``compute = False``."""
    kind: str = ""
    """Free-form role for people and plots ("device", "relay", "server", ...)."""
    pos: tuple[float, float] | None = None
    """Optional drawing position (x, y) for placement maps."""

    @property
    def can_compute(self) -> bool:
        """True when the node may run a stage (``compute`` and ``flops > 0``)."""
        return self.compute and self.flops > 0


@dataclass(frozen=True)
class Link:
    """An undirected link; ``bandwidth`` applies to each direction."""

    source: str
    target: str
    bandwidth: float
    """Bits per second, each direction."""
    latency: float = 0.0
    """Seconds of fixed cost per transmission (d_e)."""
    duplex: Duplex = "half"
    """``half``: one medium shared by both directions (wireless); ``full``: one per direction."""

    @property
    def ends(self) -> frozenset[str]:
        """The unordered pair of end nodes."""
        return frozenset((self.source, self.target))


@dataclass(frozen=True)
class Network:
    """Nodes and undirected links; at most one link joins any pair of nodes."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...]

    @cached_property
    def node_index(self) -> dict[str, int]:
        """Map node id -> position in :attr:`nodes`."""
        return {n.id: i for i, n in enumerate(self.nodes)}

    @cached_property
    def _link_by_pair(self) -> dict[frozenset[str], int]:
        return {link.ends: i for i, link in enumerate(self.links)}

    def node(self, node_id: str) -> Node:
        """Return the node called ``node_id`` (KeyError when absent)."""
        return self.nodes[self.node_index[node_id]]

    def link_index(self, u: str, v: str) -> int | None:
        """Index of the link joining ``u`` and ``v`` (either orientation), or None."""
        return self._link_by_pair.get(frozenset((u, v)))

    def link_between(self, u: str, v: str) -> Link | None:
        """The link joining ``u`` and ``v`` (either orientation), or None."""
        i = self.link_index(u, v)
        return None if i is None else self.links[i]

    @cached_property
    def graph(self) -> nx.Graph:
        """An undirected networkx view; node and edge attributes as in the problem file.

        Each edge carries ``index`` (position in :attr:`links`). Treat it as read-only.
        """
        g = nx.Graph()
        for n in self.nodes:
            g.add_node(n.id, flops=n.flops, memory=n.memory, overhead=n.overhead,
                       compute=n.can_compute)
        for i, e in enumerate(self.links):
            g.add_edge(e.source, e.target, index=i, bandwidth=e.bandwidth, latency=e.latency,
                       duplex=e.duplex)
        return g

    @property
    def compute_nodes(self) -> tuple[Node, ...]:
        """Nodes that may run a stage."""
        return tuple(n for n in self.nodes if n.can_compute)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


@dataclass(frozen=True)
class Layer:
    """One unit of the chain (a layer or a block), per sample."""

    name: str
    fwd_flops: float
    """Forward FLOPs per sample."""
    bwd_flops: float
    """Backward FLOPs per sample (default 2 x forward)."""
    out_bytes: float
    """Bytes of the activation leaving this layer (a_l); its gradient has the same size."""
    param_bytes: float = 0.0
    """Bytes of parameters."""
    act_bytes: float = 0.0
    """Bytes of activation memory kept for the backward pass, per sample."""


@dataclass(frozen=True)
class ChainModel:
    """A DNN as a chain of layers in execution order (layers are 1-based in plans)."""

    name: str
    input_bytes: float
    """Per-sample bytes of the raw input (a_0)."""
    layers: tuple[Layer, ...]

    @property
    def num_layers(self) -> int:
        """L, the number of layers."""
        return len(self.layers)

    def out_bytes(self, layer: int) -> float:
        """Bytes leaving layer ``layer`` (1-based); layer 0 is the raw input."""
        return self.input_bytes if layer == 0 else self.layers[layer - 1].out_bytes


@dataclass(frozen=True)
class DataOwner:
    """One data owner: the node holding its raw inputs and labels, and its own batch."""

    node: str
    """The owner's compute node; it runs layer 1 of the owner's pipeline, its raw data never
    leaves it."""
    batch_size: int
    """B_o, the owner's samples per iteration."""
    micro_batch_size: int | None = None
    """b_o, or None to let the planner choose."""
    labels_at: str | None = None
    """None: the owner's last stage holds its labels; a node id: U-shaped split learning."""
    name: str = ""
    """Optional display name (``clinic-b``); :attr:`label` falls back to the node id."""

    @property
    def label(self) -> str:
        """The name shown in tables: :attr:`name`, or the node id when it has none."""
        return self.name or self.node


@dataclass(frozen=True)
class TrainingSpec:
    """How the model is trained: data owner(s), batch, schedule, routing.

    With several data owners (:attr:`sources` not empty) the single-owner fields
    :attr:`source`, :attr:`batch_size`, :attr:`micro_batch_size` and :attr:`labels_at` mirror
    owner 0 (they are set from ``sources[0]`` whatever was passed).
    """

    source: str
    """The data owner; it computes layer 1 and its raw data never leaves it."""
    batch_size: int
    """B, samples per iteration."""
    micro_batch_size: int | None = None
    """b, or None to let the planner choose."""
    schedule: Schedule = "gpipe"
    """``gpipe``, ``1f1b`` or ``1f1b-net``; decides the order of passes and the memory rule."""
    state_factor: float = 3.0
    """xi: bytes of model state per parameter byte (weights + gradients + optimiser)."""
    routing: Routing = "optimize"
    """``optimize``: any simple path; ``shortest``: only min-hop paths."""
    labels_at: str | None = None
    """None: the last stage holds the labels; a node id: U-shaped split learning."""
    owners_mode: OwnersMode = "parallel"
    """Several owners: ``parallel`` (all owners' micro-batches in one iteration) or
    ``sequential`` (owners take turns, vanilla split learning); see docs/owners.md."""
    replicas: Replicas = "per-owner"
    """Several owners: ``per-owner`` (a model copy per owner) or ``shared`` (one server-side
    model, the same cut for every owner, gradients summed over owners)."""
    sources: tuple[DataOwner, ...] = ()
    """The data owners; empty for the single-source form (then :attr:`source` is the owner)."""

    def __post_init__(self) -> None:
        if self.sources:
            first = self.sources[0]
            object.__setattr__(self, "source", first.node)
            object.__setattr__(self, "batch_size", first.batch_size)
            object.__setattr__(self, "micro_batch_size", first.micro_batch_size)
            object.__setattr__(self, "labels_at", first.labels_at)


@dataclass(frozen=True)
class Problem:
    """A whole planning problem (SPEC section 2)."""

    network: Network
    model: ChainModel
    training: TrainingSpec
    name: str = ""
    description: str = ""
    meta: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    """Free-form provenance (scenario name, generator seed, ...); not used by the planner."""

    @property
    def owners(self) -> tuple[DataOwner, ...]:
        """The data owners (at least one): ``training.sources``, or the single ``source``."""
        tr = self.training
        if tr.sources:
            return tr.sources
        return (DataOwner(tr.source, tr.batch_size, tr.micro_batch_size, tr.labels_at),)

    @property
    def num_owners(self) -> int:
        """How many data owners the problem has (>= 1)."""
        return len(self.training.sources) or 1

    @property
    def is_multi_owner(self) -> bool:
        """True when the problem has more than one data owner."""
        return self.num_owners > 1

    @cached_property
    def _owner_problems(self) -> tuple[Problem, ...]:
        if not self.training.sources:
            return (self,)
        owners = self.owners
        tr = self.training
        problems = []
        for i, owner in enumerate(owners):
            others = {o.node for j, o in enumerate(owners) if j != i}
            network = self.network
            if others:  # another owner's node only forwards bytes for this owner
                nodes = tuple(replace(n, compute=False) if n.id in others else n
                              for n in network.nodes)
                network = Network(nodes, network.links)
            training = replace(tr, source=owner.node, batch_size=owner.batch_size,
                               micro_batch_size=owner.micro_batch_size,
                               labels_at=owner.labels_at, sources=())
            meta = {**self.meta, "owner": i, "owner_label": owner.label}
            problems.append(Problem(network, self.model, training, self.name,
                                    self.description, meta))
        return tuple(problems)

    def owner_problem(self, i: int) -> Problem:
        """The single-source problem of owner ``i``.

        The same model and links, training with owner ``i``'s node, batch, micro-batch size
        and label node (``sources`` empty); the *other* owners' nodes are relays in it
        (``compute = False``): an owner's tensors never reach another owner's node except as
        bytes forwarded. With one owner, owner 0's problem is the problem itself (or, for a
        one-entry ``sources`` list, the equivalent ``source`` form).

        Raises
        ------
        IndexError
            ``i`` is not an owner index.
        """
        if not 0 <= i < self.num_owners:
            raise IndexError(f"owner {i} out of range (the problem has {self.num_owners})")
        return self._owner_problems[i]

    def with_training(self, **changes: object) -> Problem:
        """A copy with some training fields replaced (validated again).

        With ``sources``, a change of ``source``, ``batch_size``, ``micro_batch_size`` or
        ``labels_at`` applies to owner 0 (those fields mirror it).
        """
        from pipesl.problem.validate import validate_problem

        fields = {k: getattr(self.training, k) for k in TrainingSpec.__dataclass_fields__}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown training fields: {sorted(unknown)}")
        fields.update(changes)
        sources = fields["sources"]
        assert isinstance(sources, tuple)
        mirrored = {"source": "node", "batch_size": "batch_size",
                    "micro_batch_size": "micro_batch_size", "labels_at": "labels_at"}
        first_changes = {mirrored[k]: v for k, v in changes.items() if k in mirrored}
        if sources and first_changes and "sources" not in changes:
            fields["sources"] = (replace(sources[0], **first_changes), *sources[1:])
        problem = Problem(self.network, self.model, TrainingSpec(**fields),
                          self.name, self.description, dict(self.meta))
        validate_problem(problem)
        return problem
