"""Each node's program when several data owners train at once (no torch).

Every owner's topology is lowered as for one owner (:func:`pipesl.runtime.program.lower`);
each action is then tagged with its owner (:attr:`~pipesl.runtime.program.Transfer.owner`,
which also separates the owners' message tags, so owners' tensors cannot be confused on a
link or a node they share). On a node:

* the **stage** lane runs every owner's passes on that node, on one thread, in the
  topology's static compute order (:attr:`OwnersTopology.order`); each pass carries its own
  receives before it and its sends after it, exactly as in that owner's single-owner lane
  (the labels' send or receive goes with the owner's first pass);
* every owner's **loss** lane (U-shaped) and **relay** lanes stay lanes of their own (they
  take no device time); their names carry the owner.

With one owner the merged program is that owner's program, action for action.
:func:`lower_owner` gives one owner's part alone (sequential turns).
"""

from __future__ import annotations

from dataclasses import replace

from pipesl.runtime.owners.topology import OwnersTopology, Task
from pipesl.runtime.program import Action, Compute, Lane, Program, Recv, Relay, Send, lower

__all__ = ["lower_owner", "lower_owners"]


def _tag(action: Action, owner: int) -> Action:
    if isinstance(action, Compute):
        return replace(action, owner=owner)
    if isinstance(action, Relay):
        return replace(action, inbound=replace(action.inbound, owner=owner),
                       outbound=replace(action.outbound, owner=owner))
    assert isinstance(action, Recv | Send)
    return replace(action, transfer=replace(action.transfer, owner=owner))


def lower_owner(otopo: OwnersTopology, owner: int) -> dict[str, Program]:
    """Owner ``owner``'s program on every node of the union, its actions tagged with it (a
    node it does not use gets an empty program)."""
    progs = lower(otopo.owners[owner])
    out: dict[str, Program] = {}
    for node in otopo.nodes:
        p = progs.get(node)
        lanes: tuple[Lane, ...] = ()
        if p is not None:
            lanes = tuple(Lane(lane.name if otopo.num_owners == 1 or lane.name == "stage"
                               else f"{lane.name} o{owner}",
                               tuple(_tag(a, owner) for a in lane.actions))
                          for lane in p.lanes)
        out[node] = Program(node, lanes)
    return out


def _chunks(actions: tuple[Action, ...]) -> dict[tuple[str, int], list[Action]]:
    """A stage lane cut into passes: each compute with the actions before it since the
    previous pass's sends, and the sends right after it."""
    out: dict[tuple[str, int], list[Action]] = {}
    pending: list[Action] = []
    last: list[Action] | None = None
    for a in actions:
        if isinstance(a, Compute):
            last = [*pending, a]
            out[(a.kind, a.micro_batch)] = last
            pending = []
        elif isinstance(a, Send) and last is not None and not pending:
            last.append(a)
        else:
            pending.append(a)
    assert not pending, "a stage lane ends with its last pass's sends"
    return out


def lower_owners(otopo: OwnersTopology) -> dict[str, Program]:
    """Every node's merged :class:`~pipesl.runtime.program.Program` for one iteration in
    which every owner trains at once (``parallel``)."""
    parts = [lower_owner(otopo, o) for o in range(otopo.num_owners)]
    out: dict[str, Program] = {}
    for node in otopo.nodes:
        chunks: dict[Task, list[Action]] = {}
        others: list[Lane] = []
        for o, progs in enumerate(parts):
            for lane in progs[node].lanes:
                if lane.name != "stage":
                    others.append(lane)
                    continue
                stage = otopo.owners[o].stage_of(node)
                assert stage is not None
                for (kind, m), acts in _chunks(lane.actions).items():
                    chunks[Task(o, stage.index, kind, m)] = acts
        lanes: list[Lane] = []
        if chunks:
            order = otopo.order[node]
            assert set(order) == set(chunks), node
            lanes.append(Lane("stage", tuple(a for t in order for a in chunks[t])))
        out[node] = Program(node, tuple(lanes + others))
    return out
