"""Schedules as data: per-stage ordered lists of forward/backward actions, and their validator.

A pipeline schedule tells each compute stage, in order, which pass of which micro-batch to run
next: ``F0 F1 B0 B1`` is "forward of micro-batch 0, forward of 1, backward of 0, backward of 1".
The simulator (:mod:`pipesl.sim`) and the runtime execute the very same
:class:`ScheduleTable`; neither decides the order itself.

The text form has one line per compute stage (stage 0 first), actions separated by spaces::

    F0 F1 B0 B1
    F0 B0 F1 B1

Micro-batches and stages are 0-based here (as in torch.distributed.pipelining).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pipesl.exceptions import ProblemError

__all__ = [
    "Action",
    "ActionKind",
    "ScheduleTable",
    "format_actions",
    "parse_actions",
    "validate_orders",
]

ActionKind = Literal["F", "B"]
_TOKEN = re.compile(r"([FB])(\d+)")


class Action(NamedTuple):
    """One pass of one micro-batch on one stage (an immutable, hashable pair)."""

    kind: ActionKind
    """``"F"`` (forward) or ``"B"`` (backward)."""
    micro_batch: int
    """0-based micro-batch index m."""

    def __str__(self) -> str:
        return f"{self.kind}{self.micro_batch}"

    @classmethod
    def parse(cls, token: str, field: str = "action") -> Action:
        """Read ``"F3"`` or ``"B0"``.

        Raises
        ------
        ProblemError
            When ``token`` is not F or B followed by a non-negative integer.
        """
        match = _TOKEN.fullmatch(token.strip())
        if match is None:
            raise ProblemError(field, "is not an action such as F0 or B3", token)
        kind: ActionKind = "F" if match.group(1) == "F" else "B"
        return cls(kind, int(match.group(2)))


def format_actions(actions: Iterable[Action]) -> str:
    """``"F0 F1 B0 B1"``: one stage's actions in text form."""
    return " ".join(str(a) for a in actions)


def parse_actions(text: str, field: str = "actions") -> tuple[Action, ...]:
    """Inverse of :func:`format_actions` (whitespace- or comma-separated tokens)."""
    tokens = text.replace(",", " ").split()
    return tuple(Action.parse(tok, f"{field}[{i}]") for i, tok in enumerate(tokens))


def validate_orders(orders: Sequence[Sequence[Action]], num_micro_batches: int,
                    field: str = "schedule") -> None:
    """Check that per-stage action orders form a runnable pipeline schedule.

    Rules: every stage runs F m and B m exactly once for every m in 0..M-1 and nothing else;
    on each stage B m comes after F m; and the orders cannot deadlock across stages, where
    F m on stage k needs F m on stage k-1 and B m on stage k needs B m on stage k+1.

    Parameters
    ----------
    orders : sequence of sequences of Action
        ``orders[k]`` is stage k's order.
    num_micro_batches : int
        M.
    field : str
        Name used in error messages.

    Raises
    ------
    ProblemError
        Naming the stage and the first rule it breaks.

    Notes
    -----
    The deadlock check executes the orders with a worklist, waking a stage's neighbours when
    it progresses: O(K M) for K stages.
    """
    m_total = num_micro_batches
    if m_total < 1:
        raise ProblemError(f"{field}.num_micro_batches", "must be at least 1", m_total)
    if not orders:
        raise ProblemError(field, "has no stages; a schedule needs at least one")
    for k, order in enumerate(orders):
        f = f"{field}.stage[{k}]"
        f_seen = bytearray(m_total)
        b_seen = bytearray(m_total)
        for i, a in enumerate(order):
            kind, m = a
            if not isinstance(m, int) or not 0 <= m < m_total or kind not in ("F", "B"):
                raise ProblemError(f"{f}[{i}]", f"is {a}; actions are F or B of micro-batches "
                                   f"0..{m_total - 1}")
            seen = f_seen if kind == "F" else b_seen
            if seen[m]:
                raise ProblemError(f"{f}[{i}]", f"repeats {a}; each action runs exactly once")
            if kind == "B" and not f_seen[m]:
                raise ProblemError(f"{f}[{i}]", f"runs {a} before F{m}; a backward pass needs "
                                   "its forward pass first")
            seen[m] = 1
        if len(order) != 2 * m_total:
            missing = [*(Action("F", m) for m in range(m_total) if not f_seen[m]),
                       *(Action("B", m) for m in range(m_total) if not b_seen[m])]
            raise ProblemError(f, f"never runs {format_actions(missing[:4])}"
                               f"{' ...' if len(missing) > 4 else ''}; every stage runs F and B"
                               " of every micro-batch")
    _check_deadlock(orders, m_total, field)


def _check_deadlock(orders: Sequence[Sequence[Action]], num_micro_batches: int,
                    field: str) -> None:
    """Execute the orders with a worklist; fail when no stage can make progress."""
    num_stages = len(orders)
    done_f = [bytearray(num_micro_batches) for _ in range(num_stages)]
    done_b = [bytearray(num_micro_batches) for _ in range(num_stages)]
    pos = [0] * num_stages
    work = deque(range(num_stages))
    queued = [True] * num_stages
    while work:
        k = work.popleft()
        queued[k] = False
        order = orders[k]
        progressed = False
        mine_f, mine_b = done_f[k], done_b[k]
        before = done_f[k - 1] if k > 0 else None
        after = done_b[k + 1] if k < num_stages - 1 else None
        i = start = pos[k]
        while i < len(order):
            kind, m = order[i]
            if kind == "F":
                if before is not None and not before[m]:
                    break
                mine_f[m] = 1
            else:
                if after is not None and not after[m]:
                    break
                mine_b[m] = 1
            i += 1
        pos[k] = i
        progressed = i > start
        if progressed:
            for j in (k - 1, k + 1):
                if 0 <= j < num_stages and not queued[j]:
                    queued[j] = True
                    work.append(j)
    stuck = [k for k in range(num_stages) if pos[k] < len(orders[k])]
    if stuck:
        waits = "; ".join(f"stage {k} waits at {orders[k][pos[k]]}" for k in stuck[:3])
        raise ProblemError(field, f"deadlocks: {waits}")


@dataclass(frozen=True)
class ScheduleTable:
    """Every compute stage's ordered actions for one iteration: a schedule as data.

    Build one with a schedule class (:class:`~pipesl.schedules.GPipe`,
    :class:`~pipesl.schedules.OneFOneB`) or from text with :meth:`from_text`; both validate.
    """

    name: str
    """The schedule that produced it (``gpipe``, ``1f1b``, or ``custom``)."""
    num_micro_batches: int
    """M."""
    orders: tuple[tuple[Action, ...], ...]
    """``orders[k]``: stage k's actions in execution order."""

    @property
    def num_stages(self) -> int:
        """K, the number of compute stages."""
        return len(self.orders)

    def validate(self) -> ScheduleTable:
        """Check the table (see :func:`validate_orders`); return it unchanged."""
        validate_orders(self.orders, self.num_micro_batches, f"schedule {self.name!r}")
        return self

    def forward_only(self) -> ScheduleTable:
        """The same table with the backward actions removed (inference, flow-shop tests)."""
        return ScheduleTable(self.name, self.num_micro_batches,
                             tuple(tuple(a for a in o if a.kind == "F") for o in self.orders))

    def to_text(self) -> str:
        """One line per stage: ``"F0 F1 B0 B1\\nF0 B0 F1 B1"``."""
        return "\n".join(format_actions(o) for o in self.orders)

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def from_text(cls, text: str, name: str = "custom") -> ScheduleTable:
        """Read :meth:`to_text`'s form (blank lines ignored); M is inferred; validated.

        Raises
        ------
        ProblemError
            On a malformed token or a table that breaks a rule of :func:`validate_orders`.
        """
        lines = [line for line in text.splitlines() if line.strip()]
        orders = tuple(parse_actions(line, f"schedule.stage[{k}]")
                       for k, line in enumerate(lines))
        m = 1 + max((a.micro_batch for o in orders for a in o), default=-1)
        return cls(name, m, orders).validate()
