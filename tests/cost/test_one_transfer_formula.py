"""The route weight and the bounds' hop time read the one transfer formula of CostTables.

:func:`pipesl.cost.transfer_weight` (the planners' route weight) and
:func:`pipesl.cost.hop_seconds` (the baselines' relaxed-route bound) give, bit for bit, the
numbers of :meth:`CostTables.transfer_times` and :meth:`CostTables.hop_times` on every built-in
scenario; and the routes the weight picks are those of the formula it replaced
(``8 b out_bytes / bandwidth + latency``), so no plan changes.
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from pipesl import cost
from pipesl.cost import CostTables
from pipesl.problem import builtin_names, load_problem

SCENARIOS = builtin_names("scenario")


def _sizes(batch_size: int) -> list[int]:
    return sorted(b for b in {1, 2, 3, 5, 8, 16, 32, batch_size} if b <= batch_size)


@pytest.mark.parametrize("name", SCENARIOS)
def test_weight_and_hop_seconds_are_the_tables_numbers(name: str) -> None:
    problem = load_problem(name)
    t = CostTables.from_problem(problem)
    graph = problem.network.graph
    assert len(problem.network.links) > 0
    for b in _sizes(problem.training.batch_size):
        x, hops = t.transfer_times(b), t.hop_times(b)
        for layer in range(t.num_layers + 1):
            weight = cost.transfer_weight(b, problem.model.out_bytes(layer))
            for e, link in enumerate(problem.network.links):
                data = graph.edges[link.source, link.target]
                assert weight(link.source, link.target, data) == float(x[e, layer])
                assert cost.hop_seconds(b, problem.model.out_bytes(layer),
                                        1.0 / link.bandwidth, link.latency) == \
                    float(hops[e, layer])


@pytest.mark.parametrize("name", SCENARIOS)
def test_routes_are_those_of_the_replaced_formula(name: str) -> None:
    problem = load_problem(name)
    graph = problem.network.graph
    ids = [n.id for n in problem.network.compute_nodes]
    checked = 0
    for b in _sizes(problem.training.batch_size):
        for layer in range(problem.model.num_layers + 1):
            bits = 8.0 * b * problem.model.out_bytes(layer)

            def old(u: str, v: str, data: dict[str, float], bits: float = bits) -> float:
                return bits / float(data["bandwidth"]) + float(data["latency"])

            new = cost.transfer_weight(b, problem.model.out_bytes(layer))
            for u, v in itertools.permutations(ids, 2):
                if nx.has_path(graph, u, v):
                    assert nx.shortest_path(graph, u, v, weight=new) == \
                        nx.shortest_path(graph, u, v, weight=old)
                    checked += 1
    assert checked > 0
