"""``make test``'s verdict (tools/test_suite.py): a suite that ran nothing fails, one empty
half is said and tolerated, any failure wins; a user's ``-m`` stays in both halves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _tool() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "tools" / "test_suite.py"
    spec = importlib.util.spec_from_file_location("test_suite_tool", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TOOL = _tool()


@pytest.mark.parametrize(("first", "second", "code", "said"), [
    (0, 0, 0, []),
    (5, 5, 5, ["make test: no test selected"]),
    (5, 0, 0, ["make test: no test without the distributed marker selected"]),
    (0, 5, 0, ["make test: no distributed test selected"]),
    (1, 0, 1, []), (0, 1, 1, []), (5, 1, 1, []), (2, 5, 2, []),
])
def test_verdict(first: int, second: int, code: int, said: list[str]) -> None:
    assert TOOL.verdict(first, second) == (code, said)


def test_a_users_marker_expression_is_kept_in_both_halves() -> None:
    assert TOOL.marker_expressions(None) == ("not distributed", "distributed")
    assert TOOL.marker_expressions("not slow") == ("not distributed and (not slow)",
                                                   "distributed and (not slow)")


def test_the_makefile_runs_the_tool_and_a_fast_subset() -> None:
    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "tools/test_suite.py --workers $(TEST_WORKERS) $(PYTEST_ARGS)" in text
    assert "FAST := not distributed and not slow" in text
