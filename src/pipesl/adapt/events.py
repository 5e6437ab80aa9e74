"""Network events moved to :mod:`pipesl.problem.events` (they describe inputs, not adaptation).

This name stays importable for callers written before the move.
"""

from pipesl.problem.events import (
    LinkState,
    NetworkEvent,
    NetworkScript,
    NodeState,
    load_network_events,
    parse_network_events,
    without_nodes,
)

__all__ = ["LinkState", "NetworkEvent", "NetworkScript", "NodeState", "load_network_events",
           "parse_network_events", "without_nodes"]
