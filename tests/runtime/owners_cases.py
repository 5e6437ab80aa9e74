"""Small many-owner problems and plans for the runtime tests (helpers, not tests).

``owners_problem`` is a four-node network, two data owners sharing a relay and a server::

    o0 ~~ r == s        (~~ half duplex, == full duplex)
    o1 ~~/

so that both owners' routes cross the relay r and the full-duplex link r == s, and both
owners' stages share the server s: 4 processes.
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


def owner_plan(node: str, b: int, labels_at: bool = False) -> Plan:
    """cnn-digits (5 units): node[1-2] -> (node, r, s) -> s[3-5] (-> back when U-shaped)."""
    return Plan((Stage(node, 1, 2), Stage("s", 3, 5)), ((node, "r", "s"),), b,
                ("s", "r", node) if labels_at else None)


def owners_plan(b: int = 4, labels_at_1: bool = False) -> OwnersPlan:
    """Both owners cut after unit 2 and share the server stage s[3-5]."""
    return OwnersPlan((owner_plan("o0", b), owner_plan("o1", b, labels_at_1)))
