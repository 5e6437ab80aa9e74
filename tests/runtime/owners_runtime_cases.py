"""Small many-owner problems and plans for the runtime tests (helpers, not tests).

``owners_problem`` is a four-node network, two data owners sharing a relay and a server::

    o0 ~~ r == s        (~~ half duplex, == full duplex)
    |   /
    o1 ~

so that both owners' routes cross the relay r and the full-duplex link r == s, both owners'
stages share the server s (4 processes), and owner 0's route may go through owner 1's node
(``via_o1``: o1 relays it).
"""

from __future__ import annotations

from typing import Any

from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.problem import Problem, compose_problem
from pipesl.problem.io import load_model, network_from_dict

NETWORK: dict[str, Any] = {
    "nodes": [
        {"id": "o0", "kind": "device", "flops": 2e8, "memory": 1e9, "overhead": 0.002},
        {"id": "o1", "kind": "device", "flops": 1.5e8, "memory": 1e9, "overhead": 0.002},
        {"id": "r", "kind": "relay", "compute": False},
        {"id": "s", "kind": "server", "flops": 8e8, "memory": 1e9, "overhead": 0.002},
    ],
    "links": [
        {"source": "o0", "target": "r", "bandwidth": 2e7, "latency": 0.002, "duplex": "half"},
        {"source": "o1", "target": "r", "bandwidth": 2e7, "latency": 0.002, "duplex": "half"},
        {"source": "r", "target": "s", "bandwidth": 5e7, "latency": 0.001, "duplex": "full"},
        {"source": "o0", "target": "o1", "bandwidth": 3e7, "latency": 0.002, "duplex": "half"},
    ],
}


def owners_problem(model: str = "cnn-digits", *, owners: str = "parallel",
                   replicas: str = "per-owner", labels_at_1: bool = False,
                   batch_sizes: tuple[int, int] = (8, 6), schedule: str = "gpipe",
                   one_owner: bool = False) -> Problem:
    """The four-node network with a zoo model's profile and two owners (o0, o1)."""
    sources = [{"node": "o0", "batch_size": batch_sizes[0], "name": "north"},
               {"node": "o1", "batch_size": batch_sizes[1], "name": "south",
                **({"labels_at": "o1"} if labels_at_1 else {})}]
    training: dict[str, Any] = {"schedule": schedule}
    if one_owner:
        training.update(source="o0", batch_size=batch_sizes[0])
    else:
        training.update(sources=sources, owners=owners, replicas=replicas)
    return compose_problem(network_from_dict(NETWORK), load_model(model), training,
                           name=f"owners-{model}")


def owner_plan(node: str, b: int, labels_at: bool = False, via: str | None = None) -> Plan:
    """cnn-digits (5 units): node[1-2] -> (node, [via,] r, s) -> s[3-5] (-> back the same
    way when U-shaped)."""
    route = (node, *((via,) if via else ()), "r", "s")
    return Plan((Stage(node, 1, 2), Stage("s", 3, 5)), (route,), b,
                tuple(reversed(route)) if labels_at else None)


def owners_plan(b: int = 4, labels_at_1: bool = False, via_o1: bool = False) -> OwnersPlan:
    """Both owners cut after unit 2 and share the server stage s[3-5]; ``via_o1``: owner 0's
    route goes o0 -> o1 -> r -> s."""
    return OwnersPlan((owner_plan("o0", b, via="o1" if via_o1 else None),
                       owner_plan("o1", b, labels_at_1)))
