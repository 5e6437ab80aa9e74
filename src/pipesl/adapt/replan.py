"""Re-planning for a changed problem, and the switch decision.

Given the running plan and the changed problem (a faded link, a node that left or joined),
:func:`replan` finds the optimal plan for the changed problem, the model state that must move
to switch (every layer whose owner changes carries its parameters and optimiser state from the
old owner — or, when that node has left, from the checkpoint node — to the new one), the time
that migration takes on the changed network (:mod:`pipesl.cost.migration`), and decides:

    switch  <=>  the old plan is no longer valid,
            or   (T_old - T_new) * remaining iterations > migration time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from pipesl.cost import (
    BulkTransfer,
    Evaluation,
    bulk_route,
    bulk_transfer_seconds,
    concurrent_transfer_seconds,
    evaluate,
    state_bytes,
)
from pipesl.exceptions import PipeslError, ProblemError
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers import SolveResult, solve

__all__ = ["Migration", "ReplanDecision", "migration_for", "replan", "switch_rule"]


@dataclass(frozen=True)
class Migration:
    """Model state that must move to go from one placement to another."""

    transfers: tuple[BulkTransfer, ...]
    layers: dict[tuple[str, str], tuple[int, ...]]
    """(from, to) -> the 1-based layers whose state travels that way."""
    total_bytes: float
    seconds: float
    """Estimated time with all transfers at once (links shared)."""


@dataclass(frozen=True)
class ReplanDecision:
    """The outcome of :func:`replan`."""

    new: SolveResult
    old: Evaluation | None
    """The old plan evaluated on the changed problem (None: no longer valid)."""
    old_invalid_reason: str
    migration: Migration
    horizon: int
    gain_per_iteration_s: float
    switch: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def with_relaunch(self, relaunch_s: float | None) -> ReplanDecision:
        """The decision once a relaunch of ``relaunch_s`` seconds also counts as a cost
        (:func:`switch_rule`); unchanged for ``None`` or an old plan that is no longer valid."""
        if relaunch_s is None or self.old is None:
            return self
        switch, reason = switch_rule(self.gain_per_iteration_s, self.horizon,
                                     self.migration.seconds, relaunch_s)
        return replace(self, switch=switch, reason=reason)

    def document(self) -> dict[str, Any]:
        """JSON-ready summary (the new plan as the SPEC plan object)."""
        return {
            "switch": self.switch,
            "reason": self.reason,
            "horizon_iterations": self.horizon,
            "old_valid": self.old is not None,
            "old_invalid_reason": self.old_invalid_reason or None,
            "old_objective_s": None if self.old is None else self.old.objective_s,
            "new_objective_s": self.new.objective_s,
            "gain_per_iteration_s": (None if self.old is None
                                     else self.gain_per_iteration_s),
            "migration": {
                "total_bytes": self.migration.total_bytes,
                "seconds": self.migration.seconds,
                "transfers": [
                    {"from": t.source, "to": t.target, "bytes": t.nbytes,
                     "layers": list(self.migration.layers[(t.source, t.target)]),
                     "route": list(t.route)}
                    for t in self.migration.transfers],
            },
            "plan": self.new.document(),
        }


def switch_rule(gain_per_iteration_s: float, horizon: int, migration_s: float,
                relaunch_s: float | None = None) -> tuple[bool, str]:
    """The one switch rule: move when the time saved over the horizon exceeds what moving
    costs (the migration, plus the relaunch when it is counted). Returns (switch, reason)."""
    saved = gain_per_iteration_s * horizon
    if gain_per_iteration_s <= 0:
        return False, "the old plan is still optimal for the changed problem"
    if saved <= migration_s:
        return False, (f"saves only {saved:.4g} s over {horizon} iterations, less than the "
                       f"{migration_s:.4g} s migration")
    if relaunch_s is None:
        return True, (f"saves {saved:.4g} s over {horizon} iterations, more than the "
                      f"{migration_s:.4g} s migration")
    if saved <= migration_s + relaunch_s:
        return False, (f"saves {saved:.3g} s over {horizon} iterations, less than the "
                       f"{migration_s:.3g} s migration plus the {relaunch_s:.3g} s relaunch")
    return True, (f"saves {saved:.4g} s over {horizon} iterations, more than the "
                  f"{migration_s:.4g} s migration plus the {relaunch_s:.3g} s relaunch")


def _owners(stages: tuple[Stage, ...]) -> dict[int, str]:
    return {layer: s.node for s in stages for layer in range(s.first_layer, s.last_layer + 1)}


def migration_for(problem: Problem, old: Plan, new: Plan, *, state_bytes_factor: float | None
                  = None, checkpoint_node: str | None = None) -> Migration:
    """The transfers that take the model state from ``old``'s placement to ``new``'s.

    Parameters
    ----------
    problem : Problem
        The changed problem (its network carries the transfers).
    old, new : Plan
    state_bytes_factor : float, optional
        Bytes moved per parameter byte: weights and optimiser state, not gradients (they are
        rebuilt every iteration). Default ``max(1, state_factor - 1)``.
    checkpoint_node : str, optional
        Where the last checkpoint of a departed node's layers is read from (default: the
        source, the data owner).
    """
    net = problem.network
    fallback = checkpoint_node or problem.training.source
    if fallback not in net.node_index:
        raise ProblemError("checkpoint_node", "is not a node of the network", fallback)
    before, after = _owners(old.stages), _owners(new.stages)
    moves: dict[tuple[str, str], list[int]] = defaultdict(list)
    for layer, target in after.items():
        source = before.get(layer, fallback)
        if source not in net.node_index:
            source = fallback
        if source != target:
            moves[(source, target)].append(layer)
    transfers = []
    total = 0.0
    for (source, target), layers in sorted(moves.items()):
        nbytes = state_bytes(problem, layers, state_bytes_factor)
        try:
            route = bulk_route(problem, source, target, nbytes)
        except nx.NetworkXNoPath:
            raise PipeslError(f"migration: no route from {source!r} to {target!r} to move "
                              f"layers {layers[0]}-{layers[-1]}") from None
        transfers.append(BulkTransfer(source, target, nbytes, route))
        total += nbytes
    seconds = concurrent_transfer_seconds(problem, transfers) if transfers else 0.0
    return Migration(tuple(transfers), {k: tuple(v) for k, v in moves.items()}, total, seconds)


def replan(problem: Problem, old: Plan, horizon: int, *, method: str = "exact",
           state_bytes_factor: float | None = None, checkpoint_node: str | None = None,
           **options: Any) -> ReplanDecision:
    """Re-plan ``problem`` and decide whether switching from ``old`` pays off.

    Parameters
    ----------
    problem : Problem
        The changed problem.
    old : Plan
        The plan the job runs now (its nodes may have left).
    horizon : int
        Iterations still to run (R).
    method : str
        Solver for the new plan.

    Returns
    -------
    ReplanDecision
    """
    if horizon < 0:
        raise ProblemError("horizon", "must be >= 0", horizon)
    new = solve(problem, method, objective="analytic", **options)
    try:
        old_eval: Evaluation | None = evaluate(problem, old)
        reason_invalid = ""
        assert old_eval is not None
        if not old_eval.feasible:
            reason_invalid = "; ".join(old_eval.violations)
            old_eval = None
    except PipeslError as exc:
        old_eval, reason_invalid = None, str(exc)
    migration = migration_for(problem, old, new.plan, state_bytes_factor=state_bytes_factor,
                              checkpoint_node=checkpoint_node)
    if old_eval is None:
        return ReplanDecision(new, None, reason_invalid, migration, horizon, float("inf"), True,
                              f"the old plan is no longer valid ({reason_invalid})")
    gain = old_eval.objective_s - new.objective_s
    switch, reason = switch_rule(gain, horizon, migration.seconds)
    return ReplanDecision(new, old_eval, "", migration, horizon, gain, switch, reason,
                          {"alone_s": [bulk_transfer_seconds(problem, t.route, t.nbytes)
                                       for t in migration.transfers]})
