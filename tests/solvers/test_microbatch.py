"""The closed-form micro-batch size, and alternating optimisation."""

from __future__ import annotations

import itertools

import pytest

from pipesl.exceptions import InfeasibleError
from pipesl.solvers import best_micro_batch_size, search_micro_batch_size, solve
from pipesl.solvers.microbatch import closed_form_micro_batch_size, objective_curve
from strategies import random_plan, random_problem


def _problem(seed: int, **kw):
    try:
        return random_problem(seed, **kw)
    except InfeasibleError:
        pytest.skip("isolated source")


@pytest.mark.parametrize("seed", range(300))
def test_closed_form_equals_search(seed: int) -> None:
    problem = _problem(seed, batch_size=[1, 2, 7, 64, 100, 256, 1000][seed % 7],
                       micro_batch_size=None)
    plan = random_plan(seed, problem)
    b1, t1 = best_micro_batch_size(problem, plan)
    _b2, t2 = search_micro_batch_size(problem, plan)
    assert t1 == pytest.approx(t2, rel=1e-12)
    if t2 != float("inf"):
        _, curve = objective_curve(problem, plan, [b1])
        assert curve[0] == pytest.approx(t1)


def test_closed_form_matches_formula_with_one_bottleneck() -> None:
    """One stage (compute only): b* = sqrt(B * beta / (alpha - alpha)) degenerates to B."""
    problem = _problem(5, n_nodes=1, n_layers=2, batch_size=64, micro_batch_size=None,
                       memory="unbounded")
    plan = random_plan(5, problem)
    # A single resource is the whole trip: T(b) = t(b) * ceil(B / b) is smallest at b = B
    # when overhead > 0, and every b ties at zero overhead.
    _b, t = search_micro_batch_size(problem, plan)
    star = closed_form_micro_batch_size(problem, plan)
    assert 1 <= star <= 64
    assert best_micro_batch_size(problem, plan)[1] == pytest.approx(t)


@pytest.mark.parametrize("seed", range(40))
def test_alternating_never_increases_and_is_bounded_by_exact(seed: int) -> None:
    problem = _problem(seed, n_nodes=2 + seed % 4, n_layers=1 + seed % 5,
                       batch_size=[8, 32, 100][seed % 3], micro_batch_size=None)
    try:
        exact = solve(problem, objective="analytic")
    except InfeasibleError:
        with pytest.raises(InfeasibleError):
            solve(problem, "alternating", objective="analytic")
        return
    alt = solve(problem, "alternating", objective="analytic")
    ts = [t for _, t in alt.history]
    assert ts, "history records every accepted step"
    assert all(later < earlier for earlier, later in itertools.pairwise(ts))
    assert alt.objective_s == pytest.approx(ts[-1], rel=1e-12)
    assert alt.objective_s >= exact.objective_s * (1 - 1e-9)
