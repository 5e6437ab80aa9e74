"""The micro-batch size for a given plan: the paper's closed form, made exact.

With stage times ``alpha_s b + beta_s`` and resource loads ``A_r b + C_r`` (cost.py), and
``M = B / b`` relaxed to a real number, the objective on an interval of b where resource k is
the bottleneck is

    T(b) = (sum_s alpha_s) b + sum_s beta_s + (B / b - 1) (A_k b + C_k)
         = (sum_s alpha_s - A_k) b + B C_k / b + const,

convex in b with minimiser (the paper's closed form)

    b* = sqrt(B C_k / (sum_s alpha_s - A_k)).

The bottleneck changes only where two load lines cross, so pipesl evaluates b* on every
interval between consecutive crossings (clipped to it), then rounds with the true
M = ceil(B / b): it checks the integer neighbours of each candidate and b = ceil(B / M) for the
neighbouring M, caps by memory, and keeps the best under the exact T. Degenerate cases: all
``C_k = 0`` (no fixed costs) gives b* -> the smallest b (1); ``sum alpha = A_k`` (the
bottleneck is the whole trip) gives b* -> the largest feasible b.

:func:`best_micro_batch_size` is the closed form; :func:`search_micro_batch_size` the
exhaustive check over every b used by the tests.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from pipesl.cost import (
    feasible_micro_batch_sizes,
    num_micro_batches,
    plan_stages,
    resource_loads,
)
from pipesl.plan import Plan
from pipesl.problem.types import Problem

__all__ = [
    "best_micro_batch_size",
    "candidate_micro_batch_sizes",
    "closed_form_micro_batch_size",
    "objective_curve",
    "search_micro_batch_size",
]


def candidate_micro_batch_sizes(batch_size: int) -> list[int]:
    """The b = ceil(B / M) for M = 1..B, ascending: one per distinct M (about 2 sqrt(B)).

    For a fixed M every stage time, load and memory need is non-decreasing in b, so
    ``b_M = ceil(B / M)`` dominates the other b with the same M (:mod:`pipesl.solvers.exact`).
    """
    m = np.arange(1, batch_size + 1)
    return sorted(set(num_micro_batches(batch_size, m).tolist()))


def _affine_parts(problem: Problem, plan: Plan) -> tuple[float, float, np.ndarray, np.ndarray]:
    stages = plan_stages(problem, plan)
    alpha = sum(s.time.alpha for s in stages)
    beta = sum(s.time.beta for s in stages)
    loads = list(resource_loads(problem, plan).values())
    return alpha, beta, np.array([a.alpha for a in loads]), np.array([a.beta for a in loads])


def objective_curve(problem: Problem, plan: Plan, sizes: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(b, T(b)) for the plan's placement at every b (default 1..B), inf where memory fails."""
    B = problem.training.batch_size
    b = np.arange(1, B + 1) if sizes is None else np.asarray(sizes)
    alpha, beta, la, lb = _affine_parts(problem, plan)
    m = num_micro_batches(B, b)
    t = alpha * b + beta + (m - 1) * np.max(np.outer(b, la) + lb, axis=1)
    ok = feasible_micro_batch_sizes(problem, plan)[b - 1]
    return b, np.where(ok, t, np.inf)


def search_micro_batch_size(problem: Problem, plan: Plan) -> tuple[int, float]:
    """The best b for the plan's placement by evaluating every b in 1..B (the reference)."""
    b, t = objective_curve(problem, plan)
    k = int(np.argmin(t))
    return int(b[k]), float(t[k])


def closed_form_micro_batch_size(problem: Problem, plan: Plan) -> float:
    """b* minimising the relaxed objective f(b) (M = B / b real), by the paper's formula.

    f(b) = max_k [alpha b + beta + (B / b - 1)(A_k b + C_k)] is convex on [1, B] (a maximum
    of convex functions), so its minimiser lies on the interval where one load line k is the
    largest, at sqrt(B C_k / (alpha - A_k)) clipped to that interval.
    """
    B = problem.training.batch_size
    alpha, beta, la, lb = _affine_parts(problem, plan)
    points = {1.0, float(B)}
    for i in range(len(la)):
        for k in range(i + 1, len(la)):
            if la[i] != la[k]:
                x = (lb[k] - lb[i]) / (la[i] - la[k])
                if 1.0 < x < B:
                    points.add(float(x))
    edges = sorted(points)
    best_b, best_f = 1.0, math.inf
    for lo, hi in itertools.pairwise(edges):
        k = int(np.argmax(la * ((lo + hi) / 2) + lb))
        denom = alpha - la[k]
        if denom <= 0:
            star = hi
        elif lb[k] <= 0:
            star = lo
        else:
            star = min(max(math.sqrt(B * lb[k] / denom), lo), hi)
        f = alpha * star + beta + (B / star - 1) * float(np.max(la * star + lb))
        if f < best_f:
            best_b, best_f = star, f
    return best_b


def best_micro_batch_size(problem: Problem, plan: Plan) -> tuple[int, float]:
    """The best b for the plan's placement: closed form, then an exact refinement.

    The closed-form b* and its integer neighbours (and b = ceil(B/M) for the neighbouring M)
    give an incumbent T. The true T(b) >= f(b) (ceil(B/b) >= B/b) and f is convex, so only
    the b = ceil(B/M) with f(b) < T can still win; those are checked too. The result equals
    :func:`search_micro_batch_size` (tested).

    Returns
    -------
    (b, T) : tuple of int and float
        T is inf when no b fits in memory.
    """
    B = problem.training.batch_size
    star = closed_form_micro_batch_size(problem, plan)
    near = np.array(sorted(_neighbours(star, B)))
    _, t_near = objective_curve(problem, plan, near)
    incumbent = float(np.min(t_near))
    alpha, beta, la, lb = _affine_parts(problem, plan)
    m = np.arange(1, B + 1)
    per_m = np.unique(num_micro_batches(B, m))
    f = alpha * per_m + beta + (B / per_m - 1) * np.max(np.outer(per_m, la) + lb, axis=1)
    rest = per_m[f < incumbent] if np.isfinite(incumbent) else per_m
    sizes = np.union1d(near, rest)
    b, t = objective_curve(problem, plan, sizes)
    k = int(np.argmin(t))
    return int(b[k]), float(t[k])


def _neighbours(x: float, B: int) -> set[int]:
    """Integers around x, and b = ceil(B / M) for the M around B / x."""
    out = set()
    for v in (math.floor(x), math.ceil(x)):
        if 1 <= v <= B:
            out.add(int(v))
            m = num_micro_batches(B, v)
            for mm in (m - 1, m, m + 1):
                if mm >= 1:
                    out.add(int(num_micro_batches(B, mm)))
    return out
