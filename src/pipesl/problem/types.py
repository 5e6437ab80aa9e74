"""The problem's types: a network of nodes and links, a chain model, training options.

All quantities are SI floats (FLOP/s, bytes, bit/s, seconds); the loaders in
:mod:`pipesl.problem.io` parse unit strings and validate every field before these objects are
built, so code that receives a :class:`Problem` may rely on its invariants (SPEC section 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import networkx as nx

__all__ = [
    "DUPLEX_MODES",
    "ROUTING_MODES",
    "SCHEDULES",
    "ChainModel",
    "Duplex",
    "Layer",
    "Link",
    "Network",
    "Node",
    "Problem",
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
class TrainingSpec:
    """How the model is trained: data owner, batch, schedule, routing."""

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

    def with_training(self, **changes: object) -> Problem:
        """A copy with some training fields replaced (validated again)."""
        from pipesl.problem.validate import validate_problem

        fields = {k: getattr(self.training, k) for k in TrainingSpec.__dataclass_fields__}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown training fields: {sorted(unknown)}")
        fields.update(changes)
        problem = Problem(self.network, self.model, TrainingSpec(**fields),
                          self.name, self.description, dict(self.meta))
        validate_problem(problem)
        return problem
