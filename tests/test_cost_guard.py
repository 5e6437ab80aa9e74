"""One cost model: no bandwidth, FLOP/s or latency arithmetic outside ``pipesl.cost``.

An ast walk over src/pipesl finds every arithmetic operation (``+ - * / // ** %``, augmented
assignments included) with an operand whose name mentions ``bandwidth``, ``flops`` or
``latency`` (``link.bandwidth``, ``d["latency"]``, ``inv_flops[n]``, ...). Formatting inside
f-strings (``{flops / 1e9:.3g}``) is display, not a formula, and is skipped. Such arithmetic
may appear only under ``cost/`` and in the files of :data:`ALLOWED`, each with the reason it
is not a cost formula; a listed file that no longer has any is an error too (shrink the list).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "pipesl"
WORD = re.compile(r"bandwidth|flops|latency", re.IGNORECASE)

ALLOWED: dict[str, str] = {
    "problem/events.py": "scripted network events scale an input figure (bandwidth x factor); "
                         "they change the problem, the cost model then prices it",
    "experiments/generators.py": "random problem generators draw bandwidths and FLOP/s",
    "experiments/instances.py": "experiment instances scale a scenario's bandwidths and FLOP/s",
    "probe/estimate.py": "the probe's least-squares fit of measured transfers (statistics of "
                         "measurements, and its fitted model's prediction for the report)",
    "testbed/run.py": "the testbed sizes a tc queue from a link's latency and rate",
}
"""File under src/pipesl -> why it holds such arithmetic without being a cost formula."""


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr, *_names(node.value)]
    if isinstance(node, ast.Subscript):
        key = node.slice
        own = [key.value] if isinstance(key, ast.Constant) and isinstance(key.value, str) else []
        return own + _names(node.value)
    if isinstance(node, ast.Call):
        return _names(node.func)
    return []


def arithmetic(tree: ast.AST) -> list[int]:
    """Lines of arithmetic on a bandwidth, FLOP/s or latency operand, f-strings skipped."""
    skip = {id(n) for f in ast.walk(tree) if isinstance(f, ast.JoinedStr) for n in ast.walk(f)}
    lines = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp):
            operands = [node.left, node.right]
        elif isinstance(node, ast.AugAssign):
            operands = [node.target, node.value]
        else:
            continue
        if any(WORD.search(name) for o in operands for name in _names(o)):
            lines.append(node.lineno)
    return sorted(set(lines))


def _scan() -> dict[str, list[int]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        lines = arithmetic(ast.parse(path.read_text(), str(path)))
        if lines:
            out[path.relative_to(SRC).as_posix()] = lines
    return out


def test_no_cost_arithmetic_outside_cost() -> None:
    found = _scan()
    bad = {f: lines for f, lines in found.items()
           if not f.startswith("cost/") and f not in ALLOWED}
    assert not bad, ("bandwidth/FLOP/s/latency arithmetic outside pipesl.cost (use or add a "
                     f"function there): {bad}")
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"allowed files without such arithmetic any more (remove them): {stale}"


def test_the_guard_sees_a_formula() -> None:
    """The walk finds the forms a re-derived formula takes, or the guard could not fail."""
    code = ("t = 8 * b * a / link.bandwidth + link.latency\n"
            "w = theta / data['bandwidth']\n"
            "s = work * inv_flops[n]\n"
            "shown = f'{flops / 1e9:.3g} GFLOP/s'\n")
    assert arithmetic(ast.parse(code)) == [1, 2, 3]
    assert any(f.startswith("cost/") for f in _scan())
