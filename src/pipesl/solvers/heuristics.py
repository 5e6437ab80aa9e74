"""Heuristic baselines: plans by rules of thumb, no proof (``status = "heuristic"``).

All three build a split, a placement and routes by a simple rule, then take the best micro-batch
size *for that plan* from the closed form (:func:`~pipesl.solvers.microbatch.best_micro_batch_size`,
which respects memory), or the problem's fixed b. A plan that does not fit in memory at any
allowed b raises :class:`~pipesl.exceptions.InfeasibleError` naming the heuristic and the node.

``even_split``
    The min-hop route from the source to the fastest reachable server (ties: fewer hops, then
    input order); every compute-capable node on that route gets a stage (at most L, keeping
    the fastest), and the layers are cut so that each stage has about the same training FLOPs
    (cut k at the first layer where the cumulative FLOPs reach k/K of the total). Routes are
    the sub-paths of that route.
``greedy``
    Fastest reachable nodes first: the source runs layer 1 (the raw data never leaves it; all
    layers when no reachable server is faster), then the fastest server takes as many
    following layers as fit in its memory, then the next fastest, and so on. Each hop takes
    the route of least transfer time for its activation at b = ceil(B / 4) (``routing:
    shortest``: a min-hop route).
``random``
    A seeded random valid plan (option ``seed``): K, the cuts, distinct stage nodes and routes
    drawn at random (routes: shortest paths under random link weights, so simple and varied);
    up to 200 draws until one fits in memory.
"""

from __future__ import annotations

import math
import random
import time
from itertools import pairwise

import networkx as nx
import numpy as np

from pipesl.cost import (
    CostTables,
    evaluate,
    feasible_micro_batch_sizes,
    num_micro_batches,
    transfer_weight,
)
from pipesl.exceptions import InfeasibleError
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.microbatch import best_micro_batch_size, objective_curve
from pipesl.solvers.result import SolveResult, finish

__all__ = ["even_split_plan", "greedy_plan", "random_plan", "solve_heuristic"]

_RANDOM_DRAWS = 200


def _reachable_servers(problem: Problem) -> list[str]:
    """Compute nodes other than the source that the source can reach, in input order."""
    net, tr = problem.network, problem.training
    reach = nx.node_connected_component(net.graph, tr.source)
    return [n.id for n in net.compute_nodes if n.id != tr.source and n.id in reach]


def _route(problem: Problem, u: str, v: str, layer: int, b: int) -> tuple[str, ...]:
    """Least-transfer-time route for layer ``layer``'s output at b (min-hop under shortest)."""
    g = problem.network.graph
    if problem.training.routing == "shortest":
        return tuple(nx.shortest_path(g, u, v))
    return tuple(nx.shortest_path(g, u, v,
                                  weight=transfer_weight(b, problem.model.out_bytes(layer))))


def _label_route(problem: Problem, last: str, b: int) -> tuple[str, ...] | None:
    labels_at = problem.training.labels_at
    if labels_at is None:
        return None
    if labels_at == last:
        return (last,)
    return _route(problem, last, labels_at, problem.model.num_layers, b)


def _b0(problem: Problem) -> int:
    B = problem.training.batch_size
    return problem.training.micro_batch_size or max(1, num_micro_batches(B, 4))


def _equal_work_cuts(work: np.ndarray, k: int) -> list[int]:
    """Layer boundaries 0 = c_0 < c_1 < ... < c_k = L with about equal work per stage."""
    L = len(work) - 1
    total = work[-1]
    cuts = [0]
    for i in range(1, k):
        j = int(np.searchsorted(work, total * i / k, side="left"))
        j = min(max(j, cuts[-1] + 1), L - (k - i))  # at least one layer per stage
        cuts.append(j)
    cuts.append(L)
    return cuts


def even_split_plan(problem: Problem) -> Plan:
    """The ``even_split`` plan (module docstring) at b = ceil(B / 4), before choosing b."""
    net, tr = problem.network, problem.training
    servers = _reachable_servers(problem)
    L = problem.model.num_layers
    b = _b0(problem)
    if not servers:
        return Plan((Stage(tr.source, 1, L),), (), b, _label_route(problem, tr.source, b))
    hops = nx.single_source_shortest_path_length(net.graph, tr.source)
    order = {n: i for i, n in enumerate(servers)}
    fastest = max(servers, key=lambda n: (net.node(n).flops, -hops[n], -order[n]))
    path = nx.shortest_path(net.graph, tr.source, fastest)
    on_path = [n for n in path if net.node(n).can_compute]
    if L == 1:
        on_path = [tr.source]
    elif len(on_path) > L:  # keep the source, the fastest server and the fastest in between
        middle = sorted(on_path[1:-1], key=lambda n: -net.node(n).flops)[:L - 2]
        on_path = [n for n in on_path if n in (tr.source, fastest) or n in middle]
    cuts = _equal_work_cuts(CostTables.from_problem(problem).work, len(on_path))
    stages = tuple(Stage(n, cuts[i] + 1, cuts[i + 1]) for i, n in enumerate(on_path))
    pos = {n: i for i, n in enumerate(path)}
    routes = tuple(tuple(path[pos[u]:pos[v] + 1]) for u, v in pairwise(on_path))
    return Plan(stages, routes, b, _label_route(problem, on_path[-1], b))


def greedy_plan(problem: Problem) -> Plan:
    """The ``greedy`` plan (module docstring) at b = ceil(B / 4), before choosing b."""
    net, tr = problem.network, problem.training
    L = problem.model.num_layers
    b = _b0(problem)
    t = CostTables.from_problem(problem)
    window = float(tr.batch_size)  # the GPipe rule; 1F1B is checked when b is chosen

    def fits(node: str, first: int, last: int) -> bool:
        need = (t.state_factor * (t.params[last] - t.params[first - 1])
                + window * (t.acts[last] - t.acts[first - 1]))
        return bool(need <= net.node(node).memory)

    order = {n: i for i, n in enumerate(_reachable_servers(problem))}
    servers = sorted(order, key=lambda n: (-net.node(n).flops, order[n]))
    source = net.node(tr.source)
    faster = [n for n in servers if net.node(n).flops > source.flops]
    queue = [tr.source] + (faster + [n for n in servers if n not in faster])
    stages: list[Stage] = []
    first = 1
    for k, node in enumerate(queue):
        if first > L:
            break
        last = first
        if node == tr.source and faster and L > 1:
            last = 1  # offload everything after layer 1 to faster servers
        else:
            while last < L and fits(node, first, last + 1):
                last += 1
            if k == len(queue) - 1:
                last = L
        stages.append(Stage(node, first, last))
        first = last + 1
    if stages[-1].last_layer < L:  # pragma: no cover - the last queued node takes the rest
        stages[-1] = Stage(stages[-1].node, stages[-1].first_layer, L)
    routes = tuple(_route(problem, s.node, n.node, s.last_layer, b)
                   for s, n in pairwise(stages))
    return Plan(tuple(stages), routes, b, _label_route(problem, stages[-1].node, b))


def random_plan(problem: Problem, rng: random.Random) -> Plan:
    """One random valid plan (memory not checked): K, cuts, nodes and routes at random."""
    net, tr = problem.network, problem.training
    L = problem.model.num_layers
    servers = _reachable_servers(problem)
    k = rng.randint(1, min(L, 1 + len(servers)))
    cuts = [0, *sorted(rng.sample(range(1, L), k - 1)), L]
    nodes = [tr.source, *rng.sample(servers, k - 1)]
    stages = tuple(Stage(nodes[i], cuts[i] + 1, cuts[i + 1]) for i in range(k))
    g = net.graph
    hops = tr.routing == "shortest"
    weights = {frozenset(e): (1.0 + rng.random() / (2 * len(g))) if hops else rng.random()
               for e in g.edges}

    def route(u: str, v: str) -> tuple[str, ...]:
        return tuple(nx.shortest_path(g, u, v, weight=lambda a, c, _: weights[frozenset((a, c))]))

    routes = tuple(route(u, v) for u, v in pairwise(nodes))
    label = None
    if tr.labels_at is not None:
        label = (nodes[-1],) if nodes[-1] == tr.labels_at else route(nodes[-1], tr.labels_at)
    return Plan(stages, routes, _b0(problem), label)


def _with_best_b(problem: Problem, plan: Plan) -> tuple[Plan, float]:
    """The plan at its best allowed b (the problem's fixed b, else the closed form)."""
    fixed = problem.training.micro_batch_size
    if fixed is not None:
        _, curve = objective_curve(problem, plan, np.array([fixed]))
        return plan.with_micro_batch_size(fixed), float(curve[0])
    b, best = best_micro_batch_size(problem, plan)
    return plan.with_micro_batch_size(b), best


def solve_heuristic(problem: Problem, rule: str, *, seed: int = 0) -> SolveResult:
    """Build the plan of heuristic ``rule`` (``even_split``, ``greedy`` or ``random``).

    Raises
    ------
    InfeasibleError
        When the rule's plan does not fit in memory at any allowed b (``random``: none of
        its draws does); the message names the node that overflows.
    """
    started = time.perf_counter()
    counters = {"draws": 1}
    if rule == "random":
        rng = random.Random(seed)
        for draw in range(1, _RANDOM_DRAWS + 1):
            plan, t = _with_best_b(problem, random_plan(problem, rng))
            if math.isfinite(t):
                counters["draws"] = draw
                break
        else:
            raise InfeasibleError(f"random: none of {_RANDOM_DRAWS} random plans (seed {seed}) "
                                  "fits in memory at any micro-batch size")
    else:
        build = {"even_split": even_split_plan, "greedy": greedy_plan}[rule]
        plan, t = _with_best_b(problem, build(problem))
        if not math.isfinite(t):
            ok = feasible_micro_batch_sizes(problem, plan)
            b = plan.micro_batch_size if ok.any() else 1
            ev = evaluate(problem, plan.with_micro_batch_size(b))
            raise InfeasibleError(f"{rule}: its plan does not fit in memory ("
                                  + "; ".join(ev.violations) + ")")
    return finish(problem, plan, rule, optimal=False, started=started, status="heuristic",
                  counters=counters, message=f"{rule} heuristic with the closed-form b")


def run_even_split(problem: Problem, *, micro_batch_size: int | None = None,
                time_limit: float | None = None) -> SolveResult:
    if micro_batch_size is not None:
        problem = problem.with_training(micro_batch_size=micro_batch_size)
    return solve_heuristic(problem, "even_split")


def run_greedy(problem: Problem, *, micro_batch_size: int | None = None,
            time_limit: float | None = None) -> SolveResult:
    if micro_batch_size is not None:
        problem = problem.with_training(micro_batch_size=micro_batch_size)
    return solve_heuristic(problem, "greedy")


def run_random(problem: Problem, *, micro_batch_size: int | None = None, seed: int = 0,
            time_limit: float | None = None) -> SolveResult:
    if micro_batch_size is not None:
        problem = problem.with_training(micro_batch_size=micro_batch_size)
    return solve_heuristic(problem, "random", seed=seed)
