"""An independent implementation of SPEC section 3, for checking ``pipesl.cost``.

Written from the text of ``SPEC.md`` section 3 alone: it does not import ``pipesl.cost`` and
does not use the helpers of the problem types (``Network.link_between``, ``ChainModel.out_bytes``
...). It reads only the plain fields of a :class:`~pipesl.problem.Problem` and a
:class:`~pipesl.plan.Plan`, and sums every stage time and every load numerically (no affine
forms), so that an error in either implementation shows up as a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

from pipesl.plan import Plan
from pipesl.problem import Link, Node, Problem

__all__ = ["Reference", "reference_evaluation"]


@dataclass
class Reference:
    """What SPEC section 3 says a plan costs."""

    objective_s: float
    first_micro_batch_s: float
    bottleneck_s: float
    resource_loads: dict[str, float]
    memory: dict[str, float]
    """Bytes used on each compute node."""
    num_micro_batches: int
    stage_times: list[float] = field(default_factory=list)
    """t_s of every stage (compute stages and link hops) in pipeline order."""
    over_memory: set[str] = field(default_factory=set)
    """Compute nodes whose memory use exceeds their capacity."""


def _find_link(problem: Problem, u: str, v: str) -> Link:
    for link in problem.network.links:
        if {link.source, link.target} == {u, v}:
            return link
    raise AssertionError(f"no link between {u} and {v}")


def _node(problem: Problem, node_id: str) -> Node:
    for n in problem.network.nodes:
        if n.id == node_id:
            return n
    raise AssertionError(f"no node {node_id}")


def reference_evaluation(problem: Problem, plan: Plan) -> Reference:
    """T(plan, b), the first micro-batch time, every resource load and memory (SPEC 3)."""
    b = plan.micro_batch_size
    B = problem.training.batch_size
    layers = problem.model.layers
    L = len(layers)
    M = math.ceil(B / b)
    K = len(plan.stages)

    times: list[float] = []
    loads: dict[str, float] = {}

    def add(resource: str, value: float) -> None:
        loads[resource] = loads.get(resource, 0.0) + value

    def hop(u: str, v: str, layer: int) -> None:
        # "x = 8 * b * out_bytes_l / bandwidth_e + latency_e  and  t = 2 * x"
        link = _find_link(problem, u, v)
        x = 8 * b * layers[layer - 1].out_bytes / link.bandwidth + link.latency
        times.append(2 * x)
        if link.duplex == "half":
            # "the sum of 2 * x over every hop that uses it, in either direction"
            add(f"link:{link.source}-{link.target}", 2 * x)
        else:
            # "two resources, one per direction; each gets x from every hop"
            add(f"link:{u}>{v}", x)
            add(f"link:{v}>{u}", x)

    for k, stage in enumerate(plan.stages):
        node = _node(problem, stage.node)
        flops = sum(layers[i - 1].fwd_flops + layers[i - 1].bwd_flops
                    for i in range(stage.first_layer, stage.last_layer + 1))
        t = b * flops / node.flops + 2 * node.overhead
        times.append(t)
        add(f"node:{stage.node}", t)
        if k < K - 1:
            route = plan.routes[k]
            for u, v in pairwise(route):
                hop(u, v, stage.last_layer)
    if plan.label_route is not None:
        route = plan.label_route
        for u, v in pairwise(route):
            hop(u, v, L)

    first = sum(times)
    bottleneck = max(loads.values())
    objective = first + (M - 1) * bottleneck

    memory: dict[str, float] = {}
    over: set[str] = set()
    for k, stage in enumerate(plan.stages, start=1):
        chosen = layers[stage.first_layer - 1:stage.last_layer]
        params = sum(x.param_bytes for x in chosen)
        acts = sum(x.act_bytes for x in chosen)
        window = B if problem.training.schedule == "gpipe" else min(M, K - k + 1) * b
        memory[stage.node] = problem.training.state_factor * params + window * acts
        if memory[stage.node] > _node(problem, stage.node).memory:
            over.add(stage.node)
    return Reference(objective, first, bottleneck, loads, memory, M, times, over)
