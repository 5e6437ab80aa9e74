"""Small problems and plans for the runtime tests (helpers, not tests).

``line_problem`` is a five-node network::

    src ~~ r == a ~~ h == b        (~~ half duplex, == full duplex)
     ~~~~~~~~~~~~/                 (and a direct half-duplex link src ~~ a)

so that plans can have relays (r, h), a compute node relaying another stage's traffic, a
half-duplex link shared by a stage route and the label route (U-shaped), and three stages.
"""

from __future__ import annotations

from typing import Any

from pipesl.plan import Plan, Stage
from pipesl.problem import Problem, compose_problem
from pipesl.problem.io import load_model, network_from_dict

NETWORK: dict[str, Any] = {
    "nodes": [
        {"id": "src", "kind": "device", "flops": 2e8, "memory": 1e9, "overhead": 0.002},
        {"id": "r", "kind": "relay", "compute": False},
        {"id": "a", "kind": "server", "flops": 4e8, "memory": 1e9, "overhead": 0.002},
        {"id": "h", "kind": "relay", "compute": False},
        {"id": "b", "kind": "server", "flops": 8e8, "memory": 1e9, "overhead": 0.002},
    ],
    "links": [
        {"source": "src", "target": "r", "bandwidth": 2e7, "latency": 0.002, "duplex": "half"},
        {"source": "r", "target": "a", "bandwidth": 5e7, "latency": 0.001, "duplex": "full"},
        {"source": "src", "target": "a", "bandwidth": 2e7, "latency": 0.002, "duplex": "half"},
        {"source": "a", "target": "h", "bandwidth": 5e7, "latency": 0.001, "duplex": "half"},
        {"source": "h", "target": "b", "bandwidth": 5e7, "latency": 0.001, "duplex": "full"},
    ],
}


def line_problem(model: str, batch_size: int, labels_at: str | None = None,
                 schedule: str = "gpipe") -> Problem:
    """The five-node network with a zoo model's profile."""
    return compose_problem(network_from_dict(NETWORK), load_model(model),
                           {"source": "src", "batch_size": batch_size, "schedule": schedule,
                            "labels_at": labels_at}, name=f"line-{model}")


def three_stage_plan(b: int) -> Plan:
    """cnn-digits (5 units): src[1-2] -> a[3-4] -> (a, h, b) -> b[5]."""
    return Plan((Stage("src", 1, 2), Stage("a", 3, 4), Stage("b", 5, 5)),
                (("src", "a"), ("a", "h", "b")), b)


def ushaped_plan(b: int) -> Plan:
    """mlp-digits (4 units), labels on src: src[1-2] -> (src, r, a) -> a[3-4] -> back."""
    return Plan((Stage("src", 1, 2), Stage("a", 3, 4)), (("src", "r", "a"),), b,
                ("a", "r", "src"))
