"""Adaptation: re-plan when the network changes, and decide whether moving the job pays off.

:mod:`~pipesl.adapt.drift` (measured against planned), :mod:`~pipesl.adapt.replan` (the new
plan, the migration, and the one switch rule), :mod:`~pipesl.adapt.loop` (the adaptation loop
over the runtime: segments, drift, failures; imports torch only when a run starts). Network
events are inputs and live in :mod:`pipesl.problem.events`.
"""

from pipesl.adapt.replan import Migration, ReplanDecision, migration_for, replan

__all__ = ["Migration", "ReplanDecision", "migration_for", "replan"]
