"""Adaptation: re-plan when the network changes, and decide whether moving the job pays off."""

from pipesl.adapt.replan import Migration, ReplanDecision, migration_for, replan

__all__ = ["Migration", "ReplanDecision", "migration_for", "replan"]
