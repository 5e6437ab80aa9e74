"""GPipe and 1F1B tables, the validator, the text form and the registry."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from pipesl.exceptions import ProblemError
from pipesl.schedules import (
    Action,
    GPipe,
    OneFOneB,
    ScheduleTable,
    format_actions,
    get_schedule,
    parse_actions,
    schedule_names,
    validate_orders,
)

SIZES = [(k, m) for k in range(1, 7) for m in range(1, 8)]


def in_flight_peak(order: tuple[Action, ...]) -> int:
    """Most micro-batches whose forward ran and whose backward has not, along the order."""
    peak = count = 0
    for a in order:
        count += 1 if a.kind == "F" else -1
        peak = max(peak, count)
    return peak


def test_gpipe_literal() -> None:
    assert GPipe().table(2, 2).to_text() == "F0 F1 B0 B1\nF0 F1 B0 B1"
    assert GPipe().table(1, 3).to_text() == "F0 F1 F2 B0 B1 B2"


def test_1f1b_literal() -> None:
    assert OneFOneB().table(2, 2).to_text() == "F0 F1 B0 B1\nF0 B0 F1 B1"
    assert OneFOneB().table(4, 6).to_text() == "\n".join([
        "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5",
        "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5",
        "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5",
        "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5",
    ])


@pytest.mark.parametrize(("k_total", "m_total"), SIZES)
def test_1f1b_warmup_and_window(k_total: int, m_total: int) -> None:
    table = OneFOneB().table(k_total, m_total)
    for k, order in enumerate(table.orders):
        warmup = min(k_total - k, m_total)
        assert [a.kind for a in order[:warmup]] == ["F"] * warmup
        assert order[warmup:warmup + 1] in ((Action("B", 0),), ())
        # SPEC memory rule: W = min(M, K - k + 1) with 1-based k.
        assert in_flight_peak(order) == min(m_total, k_total - k)
        # After the warm-up, backward and forward alternate until the forwards run out.
        steady = order[warmup:warmup + 2 * (m_total - warmup)]
        assert [a.kind for a in steady] == ["B", "F"] * (m_total - warmup)


@pytest.mark.parametrize(("k_total", "m_total"), SIZES)
@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
def test_builtin_tables_are_valid_and_round_trip(name: str, k_total: int, m_total: int) -> None:
    table = get_schedule(name).table(k_total, m_total)
    assert table.num_stages == k_total and table.num_micro_batches == m_total
    validate_orders(table.orders, m_total)
    for order in table.orders:
        assert sorted(order) == sorted(Action(kind, m) for kind in "FB" for m in range(m_total))
        assert parse_actions(format_actions(order)) == order
    again = ScheduleTable.from_text(table.to_text(), name)
    assert again == table
    if name == "gpipe":
        assert all(in_flight_peak(o) == m_total for o in table.orders)


def test_action_text() -> None:
    assert str(Action("F", 12)) == "F12"
    assert Action.parse(" B3 ") == Action(kind="B", micro_batch=3)
    assert parse_actions("F0, F1 B0  B1") == (Action("F", 0), Action("F", 1),
                                              Action("B", 0), Action("B", 1))
    for bad in ("X1", "F", "F-1", "f0", "B1.5", ""):
        with pytest.raises(ProblemError, match="is not an action"):
            Action.parse(bad)


def test_random_valid_tables_round_trip() -> None:
    """Random valid orders (random topological orders of the dependency graph) round-trip."""
    r = random.Random(5)
    for _ in range(50):
        k_total, m_total = r.randint(1, 5), r.randint(1, 5)
        pos = [0] * k_total
        orders: list[list[Action]] = [[] for _ in range(k_total)]
        done_f: list[set[int]] = [set() for _ in range(k_total)]
        done_b: list[set[int]] = [set() for _ in range(k_total)]
        while sum(pos) < 2 * k_total * m_total:
            options = []
            for k in range(k_total):
                for m in range(m_total):
                    if m not in done_f[k] and (k == 0 or m in done_f[k - 1]):
                        options.append((k, Action("F", m)))
                    if (m in done_f[k] and m not in done_b[k]
                            and (k == k_total - 1 or m in done_b[k + 1])):
                        options.append((k, Action("B", m)))
            k, a = r.choice(options)
            (done_f if a.kind == "F" else done_b)[k].add(a.micro_batch)
            orders[k].append(a)
            pos[k] += 1
        table = ScheduleTable("custom", m_total, tuple(tuple(o) for o in orders)).validate()
        assert ScheduleTable.from_text(str(table)) == table


@pytest.mark.parametrize(("text", "message"), [
    ("F0 F1 B0 B0", "repeats B0"),
    ("F0 F1 B0", "never runs B1"),
    ("F0 B1 F1 B0", "before F1"),
    ("F0 F1 B0 B1 F2", "never runs B2"),
    ("F0 F1 B0 B1\nF0 F1 B0 F0", "repeats F0"),
    ("F0 B0 F1 B1\nF0 F1 B0 B1", "deadlocks"),
    ("F1 B1 F0 B0\nF0 F1 B0 B1", "deadlocks"),
    ("", "at least 1"),
])
def test_validator_rejects(text: str, message: str) -> None:
    with pytest.raises(ProblemError, match=message):
        ScheduleTable.from_text(text)


def test_validator_accepts_reordered_but_live_tables() -> None:
    # Stage 0 runs its forwards out of order; stage 1 simply waits.
    table = ScheduleTable.from_text("F1 F0 B0 B1\nF0 F1 B0 B1")
    assert table.num_micro_batches == 2
    # Backwards in reverse order on both stages.
    ScheduleTable.from_text("F0 F1 B1 B0\nF0 F1 B1 B0")


def test_validator_rejects_out_of_range() -> None:
    with pytest.raises(ProblemError, match=r"micro-batches 0\.\.1"):
        validate_orders([[Action("F", 0), Action("F", 2)]], 2)
    with pytest.raises(ProblemError, match="no stages"):
        validate_orders([], 2)


def test_forward_only_keeps_forward_order() -> None:
    table = OneFOneB().table(3, 4).forward_only()
    assert table.to_text() == "F0 F1 F2 F3\nF0 F1 F2 F3\nF0 F1 F2 F3"


def test_registry() -> None:
    assert schedule_names() == ("gpipe", "1f1b", "1f1b-net")
    assert isinstance(get_schedule("GPipe"), GPipe)
    assert isinstance(get_schedule(" 1F1B "), OneFOneB)
    one = OneFOneB()
    assert get_schedule(one) is one
    with pytest.raises(ProblemError, match="valid names: gpipe, 1f1b"):
        get_schedule("interleaved")
    with pytest.raises(ProblemError, match="at least 1"):
        GPipe().table(0, 3)
    with pytest.raises(ProblemError, match="at least 1"):
        GPipe().table(3, 0)


def test_no_torch_needed() -> None:
    code = ("import sys; sys.modules['torch'] = None; sys.modules['matplotlib'] = None\n"
            "import pipesl.schedules, pipesl.sim\n"
            "print(pipesl.schedules.get_schedule('1f1b').table(2, 2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["F0 F1 B0 B1", "F0 B0 F1 B1"]
