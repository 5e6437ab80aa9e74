"""The SPEC problem for a fixed micro-batch size as a mixed-integer linear program (HiGHS).

An independent optimality check of the exact planner and a running-time baseline: it shares
nothing with the planner but cost.py's tables. For a micro-batch size b (M = ceil(B / b),
lambda = M - 1) and the nodes of the source's connected component:

Variables
    ``y[n, i, j]`` in {0, 1}: compute node n runs layers i..j (only the source may start at
    i = 1, and it must; stages that cannot fit in n's memory at b are not created);
    ``f[j, u->v]`` in {0, 1} for every boundary j = 1..L-1 and every directed arc of a link:
    the route carrying layer j's output (forward) and its gradient (backward) uses u->v;
    ``g[u->v]`` in {0, 1}: the label route (with ``labels_at``) carrying layer L's output;
    ``z >= 0``: the largest resource load; with ``routing: shortest`` also continuous
    ``p[j, n, m]``: the boundary-j route joins n to m.

Constraints
    * every layer is covered by exactly one stage; every node runs at most one stage (so
      consecutive stages are on distinct nodes);
    * flow conservation per boundary j and node u: out - in = [u ends a stage at j] -
      [u starts a stage at j + 1]; at most one arc in and one arc out of every node, so a
      route is a simple path plus, possibly, disjoint cycles (they cost S and load, never
      help, and the plan keeps only the path — its T can only be lower);
    * the label route: out - in = [u runs layer L] - [u is the label node];
    * loads, summed over all routes per resource: node n: its stage's t <= z; half-duplex link
      e: sum over hops on e, either direction, of 2x <= z; full-duplex link e: each direction
      gets x from every hop over e, so both directions carry the same sum of x <= z;
    * memory: GPipe needs ``xi * params + B * acts`` (stages that do not fit are absent); for
      1F1B a stage needs ``xi * params + min(M, R) * b * acts`` with R the number of stages
      from it to the end, 1 + (number of stage boundaries at layers >= j), enforced with a
      big-M row ``1 + sum_{l >= j} boundary_l <= cap + L (1 - y)`` wherever the largest window
      that fits, cap, is below M;
    * ``routing: shortest``: the route's hop count is at most the min-hop distance of its ends
      (``sum f[j] <= sum p[j, n, m] * hops(n, m)``).

Objective ``S + lambda * z`` with S the sum of every stage time. Times are scaled so that the
source's whole-model stage is 1000 units (HiGHS tolerances are absolute).

Without a fixed b the program is solved once per b = ceil(B / M) and the best kept (the joint
optimum, as ``exact``). The size is O(C L^2) stage variables and O(L E) arc variables: small
instances only — a running-time baseline, and the cross-check of the tests.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import scipy.sparse as sp

from pipesl.cost import CostTables, num_micro_batches
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.diagnose import diagnose_infeasible
from pipesl.solvers.microbatch import candidate_micro_batch_sizes
from pipesl.solvers.result import SolveResult, finish

__all__ = ["MilpOutcome", "build_milp", "solve_milp", "solve_milp_for_b"]


@dataclass
class _Program:
    """The matrices of one MILP and how to read a solution back."""

    b: int
    ids: list[str]
    c: list[float] = field(default_factory=list)
    integrality: list[int] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    row_lb: list[float] = field(default_factory=list)
    row_ub: list[float] = field(default_factory=list)
    stages: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """Column -> (node, first, last) of a y variable."""
    arcs: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """Column -> (boundary j or L for the label route, u, v) of an f or g variable."""
    scale: float = 1.0
    label: int | None = None

    def var(self, cost: float, integer: bool = True, upper: float = 1.0) -> int:
        self.c.append(cost)
        self.integrality.append(1 if integer else 0)
        self.upper.append(upper)
        return len(self.c) - 1

    def row(self, terms: list[tuple[int, float]], lb: float, ub: float) -> None:
        r = len(self.row_lb)
        for col, val in terms:
            self.rows.append(r)
            self.cols.append(col)
            self.vals.append(val)
        self.row_lb.append(lb)
        self.row_ub.append(ub)

    @property
    def num_vars(self) -> int:
        return len(self.c)


def _max_window(need_params: float, acts: float, b: int, memory: float, m: int) -> int:
    """The largest W in [0, M] with params + W * b * acts <= memory."""
    if need_params > memory:
        return -1
    if acts <= 0 or not np.isfinite(memory):
        return m
    w = int(min(m, np.floor((memory - need_params) / (b * acts))))
    while w < m and need_params + (w + 1) * b * acts <= memory:
        w += 1
    while w >= 0 and need_params + w * b * acts > memory:
        w -= 1
    return w


def build_milp(problem: Problem, b: int, tables: CostTables | None = None) -> _Program:
    """The MILP of the module docstring for micro-batch size ``b``."""
    t = tables or CostTables.from_problem(problem)
    net, tr = problem.network, problem.training
    L, B = t.num_layers, tr.batch_size
    m = num_micro_batches(B, b)
    ids = [n.id for n in net.nodes]
    src = net.node_index[tr.source]
    comp = {net.node_index[x] for x in nx.node_connected_component(net.graph, tr.source)}
    compute = [n for n in np.flatnonzero(t.can_compute).tolist() if n in comp]
    prog = _Program(b, ids)
    ref = b * float(t.stage_alpha(src, 1, L)) + t.compute_beta[src]
    prog.scale = 1000.0 / ref if ref > 0 else 1.0
    sc = prog.scale
    one_f_one_b = tr.schedule == "1f1b"
    # stage variables
    ends: dict[tuple[int, int], list[int]] = {}  # (node, last layer) -> columns
    starts: dict[tuple[int, int], list[int]] = {}  # (node, first layer) -> columns
    by_node: dict[int, list[tuple[int, float]]] = {}
    cover: list[list[int]] = [[] for _ in range(L + 1)]
    window_rows: list[tuple[int, int, int]] = []  # (column, last layer, cap)
    for n in compute:
        for i in range(1, L + 1):
            if (n == src) != (i == 1):
                continue
            for j in range(i, L + 1):
                params = t.state_factor * (t.params[j] - t.params[i - 1])
                acts = t.acts[j] - t.acts[i - 1]
                if one_f_one_b:
                    cap = _max_window(params, acts, b, t.memory[n], m)
                    if cap < 1:
                        continue
                elif params + (B if tr.schedule == "gpipe" else b) * acts > t.memory[n]:
                    continue
                else:
                    cap = m
                time_s = b * float(t.stage_alpha(n, i, j)) + t.compute_beta[n]
                col = prog.var(time_s * sc)
                prog.stages[col] = (n, i, j)
                ends.setdefault((n, j), []).append(col)
                starts.setdefault((n, i), []).append(col)
                by_node.setdefault(n, []).append((col, time_s * sc))
                for layer in range(i, j + 1):
                    cover[layer].append(col)
                if cap < m:
                    window_rows.append((col, j, cap))
    z = prog.var(0.0, integer=False, upper=np.inf)
    prog.c[z] = float(m - 1)
    for layer in range(1, L + 1):
        prog.row([(col, 1.0) for col in cover[layer]], 1.0, 1.0)
    for terms in by_node.values():
        prog.row([(col, 1.0) for col, _ in terms], 0.0, 1.0)
        prog.row([*terms, (z, -1.0)], -np.inf, 0.0)
    # route variables
    hop = t.hop_times(b)  # (E, L+1): t = 2x
    arcs = [(int(u), int(v), e) for e, (u, v) in enumerate(zip(t.link_u, t.link_v, strict=True))
            if int(u) in comp]
    directed = [(u, v, e) for u, v, e in arcs] + [(v, u, e) for u, v, e in arcs]
    link_terms: dict[int, list[tuple[int, float]]] = {e: [] for _, _, e in arcs}
    hops = None
    if tr.routing == "shortest":
        hops = dict(nx.all_pairs_shortest_path_length(net.graph))
    boundaries: dict[int, list[int]] = {}

    def route_vars(j: int) -> dict[tuple[int, int], int]:
        out = {}
        for u, v, e in directed:
            col = prog.var(hop[e, j] * sc)
            prog.arcs[col] = (j, u, v)
            link_terms[e].append((col, hop[e, j] * t.load_share[e] * sc))
            out[(u, v)] = col
        return out

    def degree_rows(cols: dict[tuple[int, int], int], supply: dict[int, list[tuple[int, float]]],
                    rhs: dict[int, float]) -> None:
        for u in sorted(comp):
            out_c = [col for (a, _), col in cols.items() if a == u]
            in_c = [col for (_, c), col in cols.items() if c == u]
            terms = [(c, 1.0) for c in out_c] + [(c, -1.0) for c in in_c] + supply.get(u, [])
            prog.row(terms, rhs.get(u, 0.0), rhs.get(u, 0.0))
            if out_c:
                prog.row([(c, 1.0) for c in out_c], 0.0, 1.0)
            if in_c:
                prog.row([(c, 1.0) for c in in_c], 0.0, 1.0)

    for j in range(1, L):
        cols = route_vars(j)
        supply: dict[int, list[tuple[int, float]]] = {}
        for n in compute:
            supply[n] = ([(c, -1.0) for c in ends.get((n, j), [])]
                         + [(c, 1.0) for c in starts.get((n, j + 1), [])])
        degree_rows(cols, supply, {})
        boundaries[j] = [c for n in compute for c in ends.get((n, j), [])]
        if hops is not None:
            pair_terms = []
            for n in compute:
                for k in compute:
                    if n != k and ids[k] in hops[ids[n]]:
                        p = prog.var(0.0, integer=False)
                        pair_terms.append((n, k, p))
            for n in compute:
                prog.row([(p, 1.0) for a, _, p in pair_terms if a == n]
                         + [(c, -1.0) for c in ends.get((n, j), [])], 0.0, 0.0)
                prog.row([(p, 1.0) for _, k, p in pair_terms if k == n]
                         + [(c, -1.0) for c in starts.get((n, j + 1), [])], 0.0, 0.0)
            prog.row([(c, 1.0) for c in cols.values()]
                     + [(p, -float(hops[ids[a]][ids[k]])) for a, k, p in pair_terms],
                     -np.inf, 0.0)
    if tr.labels_at is not None:
        label = net.node_index[tr.labels_at]
        prog.label = label
        cols = route_vars(L)
        supply = {n: [(c, -1.0) for c in ends.get((n, L), [])] for n in compute}
        degree_rows(cols, supply, {label: -1.0})
        if hops is not None:
            dist = hops[tr.labels_at]
            prog.row([(c, 1.0) for c in cols.values()]
                     + [(c, -float(dist.get(ids[n], 0))) for n in compute
                        for c in ends.get((n, L), [])], -np.inf, 0.0)
    for link_load in link_terms.values():
        if link_load:
            prog.row([*link_load, (z, -1.0)], -np.inf, 0.0)
    for col, j, cap in window_rows:
        later = [c for layer in range(j, L) for c in boundaries.get(layer, [])]
        prog.row([(c, 1.0) for c in later] + [(col, float(L))], -np.inf, cap - 1.0 + L)
    return prog


@dataclass(frozen=True)
class MilpOutcome:
    """One MILP solve at one b."""

    b: int
    plan: Plan | None
    value_s: float
    """The program's objective in seconds (inf: none found)."""
    bound_s: float
    """HiGHS's proven lower bound in seconds (inf when proven infeasible)."""
    status: int
    """scipy's status: 0 optimal, 1 limit reached, 2 infeasible, other: failure."""
    variables: int
    constraints: int
    nodes: int


def solve_milp_for_b(problem: Problem, b: int, *, time_limit: float | None = None,
                     mip_rel_gap: float = 1e-9, tables: CostTables | None = None
                     ) -> MilpOutcome:
    """Build and solve the MILP at micro-batch size ``b`` with HiGHS."""
    # scipy.optimize takes about 0.15 s to import: only when a MILP is solved (CLI start-up).
    from scipy.optimize import Bounds, LinearConstraint, milp

    prog = build_milp(problem, b, tables)
    n = prog.num_vars
    a = sp.csr_matrix((prog.vals, (prog.rows, prog.cols)), shape=(len(prog.row_lb), n))
    options: dict[str, object] = {"disp": False, "mip_rel_gap": mip_rel_gap}
    if time_limit is not None:
        options["time_limit"] = max(float(time_limit), 1e-3)
    res = milp(np.asarray(prog.c), integrality=np.asarray(prog.integrality),
               bounds=Bounds(np.zeros(n), np.asarray(prog.upper)),
               constraints=LinearConstraint(a, np.asarray(prog.row_lb),
                                            np.asarray(prog.row_ub)),
               options=options)
    bound = getattr(res, "mip_dual_bound", None)
    nodes = int(getattr(res, "mip_node_count", 0) or 0)
    if res.status == 2:
        return MilpOutcome(b, None, np.inf, np.inf, 2, n, len(prog.row_lb), nodes)
    if res.x is None:
        lb = float(bound) / prog.scale if bound is not None and np.isfinite(bound) else 0.0
        return MilpOutcome(b, None, np.inf, lb, int(res.status), n, len(prog.row_lb), nodes)
    plan = _decode(problem, prog, res.x)
    value = float(res.fun) / prog.scale
    lb = value if res.status == 0 else (float(bound) / prog.scale if bound is not None
                                        and np.isfinite(bound) else 0.0)
    return MilpOutcome(b, plan, value, lb, int(res.status), n, len(prog.row_lb), nodes)


def _decode(problem: Problem, prog: _Program, x: np.ndarray) -> Plan:
    """The plan of a MILP solution: stages from y, simple routes from the used arcs."""
    ids = prog.ids
    chosen = sorted((prog.stages[c] for c in prog.stages if x[c] > 0.5), key=lambda s: s[1])
    used: dict[int, nx.DiGraph] = {}
    for col, (j, u, v) in prog.arcs.items():
        if x[col] > 0.5:
            used.setdefault(j, nx.DiGraph()).add_edge(u, v)

    def path(j: int, a: int, c: int) -> tuple[str, ...]:
        g = used.get(j, nx.DiGraph())
        return tuple(ids[k] for k in nx.shortest_path(g, a, c))  # simple; cycles dropped

    stages = tuple(Stage(ids[n], i, j) for n, i, j in chosen)
    routes = tuple(path(s[2], s[0], nxt[0]) for s, nxt in itertools.pairwise(chosen))
    label = None
    if prog.label is not None:
        last = chosen[-1][0]
        label = (ids[last],) if last == prog.label else path(len(problem.model.layers), last,
                                                             prog.label)
    return Plan(stages, routes, prog.b, label)


def solve_milp(problem: Problem, micro_batch_size: int | None = None, *,
               time_limit: float | None = None, mip_rel_gap: float = 1e-9) -> SolveResult:
    """The optimum by mixed-integer programming: one MILP per allowed b.

    Parameters
    ----------
    problem : Problem
    micro_batch_size : int, optional
        Solve only this b (default: the problem's fixed b, else every b = ceil(B / M)).
    time_limit : float, optional
        Seconds for all the programs together; on expiry the best plan so far is returned
        with ``optimal = False``, ``status = "time_limit"`` and HiGHS's bound.
    mip_rel_gap : float
        HiGHS's relative optimality gap (default 1e-9: exact up to rounding).

    Raises
    ------
    InfeasibleError
        No valid plan fits in memory (or none was found before the limit).
    """
    started = time.perf_counter()
    tr = problem.training
    b_fixed = micro_batch_size or tr.micro_batch_size
    if b_fixed is not None and not 1 <= b_fixed <= tr.batch_size:
        raise ProblemError("micro_batch_size", f"must be in [1, batch_size={tr.batch_size}]",
                           b_fixed)
    sizes = [b_fixed] if b_fixed is not None else candidate_micro_batch_sizes(tr.batch_size)
    deadline = None if time_limit is None else started + time_limit
    tables = CostTables.from_problem(problem)
    best: MilpOutcome | None = None
    bounds: list[float] = []
    counters = {"programs": 0, "variables": 0, "constraints": 0, "bb_nodes": 0}
    proven = True
    for b in sizes:
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            proven = False
            bounds.append(0.0)
            continue
        out = solve_milp_for_b(problem, b, time_limit=left, mip_rel_gap=mip_rel_gap,
                               tables=tables)
        counters["programs"] += 1
        counters["variables"] = max(counters["variables"], out.variables)
        counters["constraints"] = max(counters["constraints"], out.constraints)
        counters["bb_nodes"] += out.nodes
        proven &= out.status in (0, 2)
        bounds.append(out.bound_s)
        if out.plan is not None and (best is None or out.value_s < best.value_s):
            best = out
    if best is None or best.plan is None:
        if not proven:
            raise InfeasibleError(f"milp: no plan found before the time limit ({time_limit} s)")
        raise InfeasibleError(diagnose_infeasible(problem, sizes))
    lower = min([best.value_s, *bounds])
    status = "optimal" if proven else "time_limit"
    message = "" if proven else (f"HiGHS stopped before a proof; gap "
                                 f"{(best.value_s - lower) / best.value_s:.2%}")
    return finish(problem, best.plan, "milp", optimal=proven, lower_bound_s=lower,
                  started=started, status=status, message=message, counters=counters)


def run_milp(problem: Problem, *, micro_batch_size: int | None = None,
          time_limit: float | None = None, mip_rel_gap: float = 1e-9) -> SolveResult:
    return solve_milp(problem, micro_batch_size, time_limit=time_limit,
                      mip_rel_gap=mip_rel_gap)
