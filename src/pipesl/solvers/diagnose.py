"""Explain why a problem has no valid plan: the binding constraint and by how much."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from pipesl.cost import CostTables, num_micro_batches
from pipesl.problem.types import Problem
from pipesl.units import format_quantity

__all__ = ["diagnose_infeasible"]

_DP_LIMIT = 2e8
"""Largest L * L * C * R (layers, layers, nodes, window levels) the split search may cost."""


def _bytes(value: float) -> str:
    return "unbounded" if not np.isfinite(value) else format_quantity(value, "bytes", 4)


def diagnose_infeasible(problem: Problem, sizes: Sequence[int]) -> str:
    """A one-line reason why no plan fits, for the smallest allowed micro-batch size.

    Checks, in order: the source's memory for layer 1; every layer against the largest
    reachable compute node; the whole model against the reachable nodes' total memory; then
    the best split of the model into contiguous stages (a search over splits and placements
    that ignores routes, which never bind: every node reachable from the source can be
    routed to). Each message names the nodes and layers and says by how many bytes the need
    exceeds the memory.
    """
    tables = CostTables.from_problem(problem)
    net, tr = problem.network, problem.training
    reach = nx.node_connected_component(net.graph, tr.source)
    nodes = [n for n in net.compute_nodes if n.id in reach]
    b = min(sizes)
    model = problem.model

    def need(first: int, last: int) -> float:
        return float(tables.state_factor * (tables.params[last] - tables.params[first - 1])
                     + float(tables.window(b, 1)) * (tables.acts[last] - tables.acts[first - 1]))

    def layers(first: int, last: int) -> str:
        names = model.layers
        if first == last:
            return f"layer {first} ({names[first - 1].name})"
        return f"layers {first}-{last} ({names[first - 1].name}..{names[last - 1].name})"

    at_b = f"at micro-batch size {b}"
    src = net.node(tr.source)
    first = need(1, 1)
    if first > src.memory:
        return (f"memory: the source {src.id!r} must run layer 1 "
                f"({model.layers[0].name}), which needs {_bytes(first)} {at_b}, but it has "
                f"{_bytes(src.memory)} (short by {_bytes(first - src.memory)})")
    largest = max(nodes, key=lambda n: n.memory)
    for l in range(1, model.num_layers + 1):
        if need(l, l) > largest.memory:
            return (f"memory: {layers(l, l)} alone needs {_bytes(need(l, l))} {at_b}; the "
                    f"largest compute node reachable from the source, {largest.id!r}, has "
                    f"{_bytes(largest.memory)} (short by {_bytes(need(l, l) - largest.memory)})")
    total = need(1, model.num_layers)
    capacity = float(np.sum([n.memory for n in nodes]))
    if total > capacity:
        return (f"memory: the model needs at least {_bytes(total)} in all {at_b}, but the "
                f"{len(nodes)} compute nodes reachable from the source have {_bytes(capacity)}"
                f" together (short by {_bytes(total - capacity)})")
    found = _best_split(problem, tables, [net.node_index[n.id] for n in nodes],
                        net.node_index[tr.source], b)
    if found is None:
        return ("memory: no split of the model into contiguous stages on distinct nodes fits "
                f"in their memory {at_b} (each layer fits somewhere, but no chain of nodes "
                "holds them all)")
    overflow, chain, exact = found
    names = [net.nodes[i].id for i, _, _, _ in chain]
    if overflow > 0:
        i, lo, hi, used = max(chain, key=lambda s: s[3] - tables.memory[s[0]])
        node = net.nodes[i]
        verb = "needs" if lo == hi else "need"
        return (f"memory: no split of the model fits {at_b}; the best split still overfills "
                f"a node by {_bytes(overflow)}: in it {layers(lo, hi)} {verb} {_bytes(used)} "
                f"on {node.id!r}, which has {_bytes(node.memory)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        runs = [f"{net.nodes[i].id!r} runs {layers(lo, hi)}" for i, lo, hi, _ in chain
                if net.nodes[i].id in repeated]
        where = "; ".join(runs[:4]) + ("; ..." if len(runs) > 4 else "")
        return (f"memory: the model fits {at_b} only if a node ran two stages ({where}); no "
                "node computes two stages: add memory or compute nodes")
    stages = [f"{layers(lo, hi)} on {net.nodes[i].id!r}" for i, lo, hi, _ in chain]
    plan = ", ".join(stages[:4]) + (", ..." if len(stages) > 4 else "")
    if exact:
        return (f"memory: a split fits {at_b} ({plan}), but not within this method's "
                "restrictions")
    return ("memory: no split of the model into contiguous stages on distinct nodes fits in "
            f"their memory {at_b} (1f1b keeps more micro-batches on early stages; with one "
            f"each, {plan} would fit)")


def _best_split(problem: Problem, tables: CostTables, nodes: list[int], source: int, b: int
                ) -> tuple[float, list[tuple[int, int, int, float]], bool] | None:
    """The split and placement whose worst stage overfills its node the least.

    Stage 1 runs on the source; consecutive stages run on different reachable compute nodes
    (a node may come back later: a relaxation of "distinct nodes" that keeps this a dynamic
    program). A stage's activation window depends on how many stages follow it (1f1b keeps
    min(M, K - k + 1) micro-batches), so the program counts stages from the end: level r is
    the r-th stage from the end, and the top level stands for "r or more" when the window no
    longer grows (always under gpipe, from r = M under 1f1b).

    Returns
    -------
    (overflow, chain, exact) or None
        ``overflow``: the least, over splits, of the largest (need - memory) of a stage, in
        bytes (<= 0 when the split fits); ``chain``: its stages as (node index, first layer,
        last layer, bytes needed); ``exact``: False when the 1f1b windows were shrunk to one
        micro-batch to keep the search small. None when even that is too big to search.
    """
    L = problem.model.num_layers
    C = len(nodes)
    tr = problem.training
    m = num_micro_batches(tr.batch_size, b)
    exact = True
    cap = 1 if tr.schedule == "gpipe" else m   # the window is the same for every r >= cap
    if L * L * C * max(2, cap) > _DP_LIMIT:
        if L * L * C * 2 > _DP_LIMIT:
            return None
        cap, exact = 1, tr.schedule == "gpipe"  # every window = window(b, 1): a lower bound
    top = max(2, cap)
    absorbing = top < min(C, L)
    if not absorbing:
        top = min(C, L)                           # K <= min(C, L) stages in any plan
    memory = tables.memory[nodes]
    col = np.arange(C)
    # best[r, i, n]: least worst overflow covering layers i+1..L when layer i+1 starts the
    # r-th stage from the end on nodes[n]; step: that stage's last layer; after: next node.
    best = np.full((top + 1, L + 1, C), np.inf)
    step = np.zeros((top + 1, L + 1, C), dtype=np.int64)
    after = np.zeros((top + 1, L + 1, C), dtype=np.int64)
    for r in range(1, top + 1):
        window_level = min(r, cap)
        for i in range(L - 1, -1, -1):
            need = tables.stage_memory(i, b, window_level)    # (L - i,) for j = i+1..L
            value = need[:, None] - memory[None, :]           # (L - i, C)
            rest = np.full((L - i, C), np.inf)
            nxt = np.zeros((L - i, C), dtype=np.int64)
            if r == 1:
                rest[-1, :] = -np.inf                         # j = L: the last stage
            elif C > 1 and i + 1 < L:
                follow = best[r - 1, i + 1:L, :]              # the next stage starts at j + 1
                if absorbing and r == top:
                    follow = np.minimum(follow, best[r, i + 1:L, :])
                order = np.argsort(follow, axis=1)
                first, second = order[:, :1], order[:, 1:2]
                pick = np.where(first == col[None, :], second, first)
                rest[:-1, :] = np.take_along_axis(follow, pick, axis=1)
                nxt[:-1, :] = pick
            value = np.maximum(value, rest)
            t = np.argmin(value, axis=0)
            best[r, i, :] = value[t, col]
            step[r, i, :] = i + 1 + t
            after[r, i, :] = nxt[t, col]
    s = nodes.index(source)
    r = int(np.argmin(best[1:, 0, s])) + 1
    overflow = float(best[r, 0, s])
    if not np.isfinite(overflow):
        return None
    chain = []
    i, n = 0, s
    while True:
        j = int(step[r, i, n])
        window_level = min(r, cap)
        used = float(tables.stage_memory(i, b, window_level)[j - i - 1])
        chain.append((nodes[n], i + 1, j, used))
        if j == L or r == 1:
            break
        n_next = int(after[r, i, n])
        stay = absorbing and r == top and best[r, j, n_next] <= best[r - 1, j, n_next]
        r = r if stay else r - 1
        i, n = j, n_next
    return overflow, chain, exact
