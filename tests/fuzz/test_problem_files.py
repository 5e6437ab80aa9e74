"""Fuzz ``load_problem`` with one-field mutations of valid problem files (JSON and YAML).

Each case: a valid base (a seeded random problem, a built-in scenario or an example) written in
full, one mutation of a class (missing field, wrong type, NaN, 1e400, unit strings, unknown or
duplicate ids, self-loops, ...), the file written as JSON or YAML, then ``load_problem``. The
mutation predicts the outcome (``mutate.py``): a ProblemError naming exactly that field and
the rule, or a valid load equal to the predicted problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import FUZZ, SLOW, judge
from hypothesis import given
from hypothesis import strategies as st
from mutate import MUTATIONS, STEM, base_documents, baseline, dump, mutate

from pipesl.problem import load_problem


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("problems")


def run_case(cls: str, data: Any, folder: Path) -> None:
    doc = data.draw(base_documents(), label="base")
    base = baseline(doc)
    fmt = data.draw(st.sampled_from(["json", "yaml"]), label="format")
    expectation = mutate(cls, data.draw, doc, base, "problem", fmt)
    path = folder / f"{STEM}.{fmt}"
    path.write_text(dump(doc, fmt), encoding="utf-8")
    judge(cls, lambda: load_problem(path), str(path), expectation)


@pytest.mark.parametrize("cls", list(MUTATIONS))
@FUZZ
@given(data=st.data())
def test_problem_file_mutation(cls: str, folder: Path, data: Any) -> None:
    run_case(cls, data, folder)


@pytest.mark.slow
@pytest.mark.parametrize("cls", list(MUTATIONS))
@SLOW
@given(data=st.data())
def test_problem_file_mutation_long(cls: str, folder: Path, data: Any) -> None:
    run_case(cls, data, folder)
