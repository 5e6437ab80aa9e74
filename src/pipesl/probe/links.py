"""Link estimates from the timings of :func:`pipesl.runtime.linktiming.time_links` (no torch).

How the transfers are timed (alone and back to back, one message per transfer, the runtime's
way) is described in :mod:`pipesl.runtime.linktiming`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pipesl.probe.estimate import LinkEstimate, fit_direction

if TYPE_CHECKING:
    from pipesl.runtime.linktiming import LinkTimings

__all__ = ["estimate_links"]


def estimate_links(links: Sequence[tuple[str, str]],
                   sizes: Mapping[frozenset[str], Sequence[int]],
                   timed: LinkTimings) -> list[LinkEstimate]:
    """One estimate per link: fitted on the streamed transfers, with the fit of the lone ones
    beside (:attr:`LinkEstimate.forward_alone`)."""
    out = []
    for u, v in links:
        todo = list(sizes[frozenset((u, v))])
        (fa, fs), (ba, bs) = timed[(u, v)], timed[(v, u)]
        out.append(LinkEstimate(u, v, fit_direction(u, v, todo, fs),
                                fit_direction(v, u, todo, bs),
                                fit_direction(u, v, todo, fa), fit_direction(v, u, todo, ba)))
    return out
