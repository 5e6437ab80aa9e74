"""Per-rank programs lowered from the schedule table: compute, send, receive, relay (no torch).

The schedule table (:attr:`pipesl.schedules.ScheduleTable.orders`) says in which order each
compute stage runs its forward and backward passes; :func:`lower` turns it, with the
topology's routes, into one :class:`Program` per node: what that node does in one iteration,
as *lanes* of actions. Each lane runs in order on one thread of the rank
(:mod:`pipesl.runtime.executor`):

* the **stage** lane of a compute node: its table order, each forward pass preceded by the
  receive of its input (unless it is the first stage) and followed by the send of its output
  (unless it computes the loss itself), each backward pass preceded by the receive of its
  output's gradient (unless it computes the loss) and followed by the send of its input's
  gradient (unless it is the first stage); the source sends the labels first, the last stage
  receives them before its first forward pass (when they travel);
* the **loss** lane of a U-shaped label node: per micro-batch, receive the last stage's
  output, compute the loss, send its gradient back;
* one **relay** lane per stream that crosses the node without being computed on: receive
  from the previous hop, send on the next, micro-batch by micro-batch.

A *stream* is the sequence of messages of one kind along one route (activations forward,
gradients backward, or the labels along the label path); :class:`Transfer` is one hop of a
stream. Between two nodes, each stream has its own message tag, and the micro-batches of one
stream always cross a hop in the same order (the order in which its producer emits them), so a
message needs no header: the receiver knows what comes next on each tag, and its shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from pipesl.runtime.topology import Topology

__all__ = [
    "Compute",
    "Lane",
    "Program",
    "Recv",
    "Relay",
    "Send",
    "Transfer",
    "interleaves",
    "lower",
    "posted_ahead",
]

StreamKind = Literal["F", "B", "labels"]

OWNER_TAGS = 1 << 16
"""Message tags reserved per data owner (a route count far above any plan's)."""


@dataclass(frozen=True)
class Transfer:
    """One hop of one stream: ``sender`` -> ``receiver``."""

    kind: StreamKind
    """``F`` (activations), ``B`` (gradients) or ``labels``."""
    route: int
    """Index into :attr:`Topology.routes` (-1 for the labels)."""
    position: int
    """The hop's position along the route (along the label path for the labels)."""
    sender: str
    receiver: str
    step: int
    """The hop's pipeline step (-1 for the labels, which the cost model does not charge)."""
    owner: int = 0
    """The data owner whose stream this is (0 with one owner; :mod:`pipesl.runtime.owners`)."""

    @property
    def tag(self) -> int:
        """The message tag of this stream (unique per stream and owner, the same on every
        hop): owner o's tags are ``o * OWNER_TAGS`` above owner 0's."""
        if self.kind == "labels":
            return 1 + self.owner * OWNER_TAGS
        return 2 + 2 * self.route + (self.kind == "B") + self.owner * OWNER_TAGS


@dataclass(frozen=True)
class Compute:
    """A pass: ``F`` or ``B`` of the node's stage, or ``L`` (the loss node's loss and its
    gradient) of micro-batch ``micro_batch``."""

    kind: str
    micro_batch: int
    owner: int = 0
    """The data owner whose pass this is."""


@dataclass(frozen=True)
class Recv:
    """Wait for micro-batch ``micro_batch`` on ``transfer`` (-1: the iteration's labels)."""

    transfer: Transfer
    micro_batch: int


@dataclass(frozen=True)
class Send:
    """Send what the previous action produced (the labels: the batch's) on ``transfer``."""

    transfer: Transfer
    micro_batch: int


@dataclass(frozen=True)
class Relay:
    """Receive micro-batch ``micro_batch`` on ``inbound`` and send it on ``outbound``."""

    inbound: Transfer
    outbound: Transfer
    micro_batch: int


Action = Compute | Recv | Send | Relay


@dataclass(frozen=True)
class Lane:
    """Actions run in order by one thread of the rank."""

    name: str
    """``stage``, ``loss`` or ``relay <stream>``."""
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Program:
    """One node's iteration: its lanes (the stage lane first when it computes)."""

    node: str
    lanes: tuple[Lane, ...]

    def inbound(self) -> dict[Transfer, tuple[int, ...]]:
        """Every transfer this node receives on, with the micro-batches in arrival order."""
        order: dict[Transfer, list[int]] = {}
        for lane in self.lanes:
            for a in lane.actions:
                if isinstance(a, Recv):
                    order.setdefault(a.transfer, []).append(a.micro_batch)
                elif isinstance(a, Relay):
                    order.setdefault(a.inbound, []).append(a.micro_batch)
        return {t: tuple(ms) for t, ms in order.items()}

    def outbound(self) -> dict[Transfer, tuple[int, ...]]:
        """Every transfer this node sends on, with the micro-batches in sending order."""
        order: dict[Transfer, list[int]] = {}
        for lane in self.lanes:
            for a in lane.actions:
                if isinstance(a, Send):
                    order.setdefault(a.transfer, []).append(a.micro_batch)
                elif isinstance(a, Relay):
                    order.setdefault(a.outbound, []).append(a.micro_batch)
        return {t: tuple(ms) for t, ms in order.items()}


def _hop(topo: Topology, kind: Literal["F", "B"], route: int, position: int) -> Transfer:
    h = topo.hops[route][position]
    sender, receiver = h.ends(kind)
    return Transfer(kind, route, position, sender, receiver, h.step)


def _label_hops(topo: Topology) -> list[Transfer]:
    if topo.labels_local:
        return []
    return [Transfer("labels", -1, q, u, v, -1)
            for q, (u, v) in enumerate(pairwise(topo.label_path))]


def lower(topo: Topology) -> dict[str, Program]:
    """Every node's :class:`Program` for one iteration of ``topo``'s schedule.

    The micro-batch order of every stream is its producer's: the forward passes of stage k
    (route k's activations), the backward passes of stage k + 1 (route k's gradients), the
    loss lane's 0..M-1 (the label route's gradients).
    """
    k_total = topo.num_stages
    m_total = topo.num_micro_batches
    label_route = topo.has_label_route
    lanes: dict[str, list[Lane]] = {n: [] for n in topo.nodes}
    labels = _label_hops(topo)

    for st in topo.stages:
        k = st.index
        acts: list[Action] = []
        if k == 0 and labels:
            acts.append(Send(labels[0], -1))
        loss_here = k == k_total - 1 and not label_route
        if loss_here and labels:
            acts.append(Recv(labels[-1], -1))
        for a in topo.table.orders[k]:
            m = a.micro_batch
            if a.kind == "F":
                if k > 0:
                    acts.append(Recv(_hop(topo, "F", k - 1, len(topo.hops[k - 1]) - 1), m))
                acts.append(Compute("F", m))
                if not loss_here:
                    acts.append(Send(_hop(topo, "F", k, 0), m))
            else:
                if not loss_here:
                    acts.append(Recv(_hop(topo, "B", k, 0), m))
                acts.append(Compute("B", m))
                if k > 0:
                    acts.append(Send(_hop(topo, "B", k - 1, len(topo.hops[k - 1]) - 1), m))
        lanes[st.node].append(Lane("stage", tuple(acts)))

    if label_route:
        r = len(topo.routes) - 1
        last = len(topo.hops[r]) - 1
        acts = []
        if labels:
            acts.append(Recv(labels[-1], -1))
        for m in range(m_total):
            acts += [Recv(_hop(topo, "F", r, last), m), Compute("L", m),
                     Send(_hop(topo, "B", r, last), m)]
        lanes[topo.loss_node].append(Lane("loss", tuple(acts)))

    for r, hops in enumerate(topo.hops):
        producer_f = [a.micro_batch for a in topo.table.orders[r] if a.kind == "F"]
        if r + 1 < k_total:
            producer_b = [a.micro_batch for a in topo.table.orders[r + 1] if a.kind == "B"]
        else:
            producer_b = list(range(m_total))  # the loss lane's order
        for p in range(1, len(hops)):
            node = hops[p].src
            f_in, f_out = _hop(topo, "F", r, p - 1), _hop(topo, "F", r, p)
            lanes[node].append(Lane(f"relay F{r}",
                                    tuple(Relay(f_in, f_out, m) for m in producer_f)))
            b_in, b_out = _hop(topo, "B", r, p), _hop(topo, "B", r, p - 1)
            lanes[node].append(Lane(f"relay B{r}",
                                    tuple(Relay(b_in, b_out, m) for m in producer_b)))
    for q in range(1, len(labels)):
        lanes[labels[q].sender].append(Lane("relay labels",
                                            (Relay(labels[q - 1], labels[q], -1),)))

    return {n: Program(n, tuple(sorted(lanes[n], key=_lane_rank))) for n in topo.nodes}


def interleaves(topo: Topology) -> bool:
    """Whether some stage runs a forward pass after a backward pass in one iteration (1F1B's
    steady state), rather than all its forwards first (GPipe)."""
    for order in topo.table.orders:
        seen_b = False
        for a in order:
            if a.kind == "B":
                seen_b = True
            elif seen_b:
                return True
    return False


def posted_ahead(program: Program, topo: Topology, padded: bool) -> frozenset[Transfer]:
    """The inbound transfers of ``program`` whose receives the transport posts ahead.

    Every one, except the stage lane's when the schedule :func:`interleaves` forward and
    backward passes and the passes are real compute (not ``padded`` by the emulator): there
    both ranks compute at once most of the time, and a message posted ahead is copied off
    the socket by gloo's loop thread while both cores compute, which delays it; posted when
    needed, as ``torch.distributed.pipelining`` posts it, it moves while the receiver waits
    (measured in docs/runtime.md). Relay and loss lanes always post ahead (they compute
    nothing in between), and so do the labels (they come once per iteration, before any
    pass, where torch's last stage has them already).
    """
    inbound = program.inbound()
    if padded or not interleaves(topo):
        return frozenset(inbound)
    stage = {a.transfer for lane in program.lanes if lane.name == "stage"
             for a in lane.actions if isinstance(a, Recv) and a.transfer.kind != "labels"}
    return frozenset(t for t in inbound if t not in stage)


def _lane_rank(lane: Lane) -> int:
    return {"stage": 0, "loss": 1}.get(lane.name, 2)
