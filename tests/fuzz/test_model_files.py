"""Fuzz ``load_model`` with one-field mutations of model profiles (JSON and YAML, with or
without the top-level ``model:`` key), predicted as in ``mutate.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import FUZZ, SLOW, Accept, Reject, judge
from hypothesis import given
from hypothesis import strategies as st
from mutate import SCOPES, STEM, as_written, base_documents, baseline, dump, mutate

from pipesl.problem import load_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def run_model_case(cls: str, data: Any, folder: Path) -> None:
    doc = data.draw(base_documents(), label="base")
    base = baseline(doc)
    fmt = data.draw(st.sampled_from(["json", "yaml"]), label="format")
    expectation = mutate(cls, data.draw, doc, base, "model", fmt)
    if isinstance(expectation, Accept):
        expectation = Accept(expectation.expected.model)
    wrapped = data.draw(st.booleans(), label="wrapped")
    if wrapped:
        text = dump({"description": "a profile", "model": doc["model"]}, fmt)
    else:
        if not isinstance(doc["model"], dict) or "model" in doc["model"]:
            wrapped = True  # a bare non-mapping cannot be told from a wrapper: keep the key
            text = dump({"model": doc["model"]}, fmt)
        else:
            text = dump(doc["model"], fmt)
            expectation = as_written(expectation, "model")
    path = folder / f"{STEM}.{fmt}"
    path.write_text(text, encoding="utf-8")
    judge(f"model: {cls}", lambda: load_model(path), str(path), expectation)


@pytest.mark.parametrize("cls", SCOPES["model"])
@FUZZ
@given(data=st.data())
def test_model_file_mutation(cls: str, folder: Path, data: Any) -> None:
    run_model_case(cls, data, folder)


@pytest.mark.slow
@pytest.mark.parametrize("cls", SCOPES["model"])
@SLOW
@given(data=st.data())
def test_model_file_mutation_long(cls: str, folder: Path, data: Any) -> None:
    run_model_case(cls, data, folder)


@pytest.mark.parametrize(("doc", "field", "rule"), [
    ({"model": {"input_bytes": 1, "layers": [{"name": "a", "fwd_flops": 1, "out_bytes": 1}]},
      "comment": "x"}, "comment", "is not a known field of a model file"),
    ({"model": {"input_bytes": 1, "layers": [{"name": "a", "fwd_flops": 1, "out_bytes": 1}]},
      "description": ["not", "text"]}, "description", "must be a string"),
    ({"input_bytes": 1, "layers": []}, "model.layers", "is empty"),
    ({"model": "vgg16"}, "model", "must be a mapping"),
])
def test_model_file_wrappers(folder: Path, doc: Any, field: str, rule: str) -> None:
    path = folder / "wrapper.yaml"
    path.write_text(dump(doc, "yaml"))
    judge("model: extra field", lambda: load_model(path), str(path), Reject(field, rule))
