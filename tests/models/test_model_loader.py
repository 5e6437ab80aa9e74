"""User models: ``package.module:factory`` and ``file.py:factory`` references, and their errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from pipesl.exceptions import ProblemError
from pipesl.models import load_factory, resolve_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, where ``examples.custom_model`` is importable."""
    monkeypatch.chdir(REPO)
    return REPO


def write_module(tmp_path: Path, body: str) -> str:
    path = tmp_path / "user_models.py"
    path.write_text("import torch\nfrom torch import nn\n\n" + textwrap.dedent(body))
    return str(path)


def test_package_module_factory(in_repo: Path) -> None:
    resolved = resolve_model("examples.custom_model:make")
    assert resolved.name == "make"
    assert [n for n, _ in resolved.model.named_children()] == ["conv1", "conv2", "conv3", "head"]
    assert resolved.sample.shape == (3, 32, 32)  # from the model's input_shape attribute
    assert resolved.model(resolved.sample.unsqueeze(0)).shape == (1, 10)


def test_file_factory_with_a_blocks_list(in_repo: Path) -> None:
    resolved = resolve_model("examples/custom_model.py:make_blocks", input_shape=(32,))
    assert [n for n, _ in resolved.model.named_children()] == [
        "blocks_0", "blocks_1", "blocks_2", "blocks_3"]


def test_pipesl_units_method(tmp_path: Path) -> None:
    path = write_module(tmp_path, """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)
            def forward(self, x):
                return self.b(torch.relu(self.a(x)))
            def pipesl_units(self):
                return [("a", self.a), ("relu", nn.ReLU()), ("b", self.b)]
    """)
    resolved = resolve_model(f"{path}:Net", input_shape=(4,))
    assert resolved.name == "Net"
    assert [n for n, _ in resolved.model.named_children()] == ["a", "relu", "b"]


def test_a_chain_that_misses_part_of_forward_is_refused(tmp_path: Path) -> None:
    path = write_module(tmp_path, """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return 2 * x
        def make():
            return Net()
    """)
    with pytest.raises(ProblemError, match=r"does not reproduce its forward\(\)"):
        resolve_model(f"{path}:make", input_shape=(4,))


@pytest.mark.parametrize(("ref", "message"), [
    ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
    ("examples.custom_model:nothing", "has no attribute 'nothing'"),
    ("examples/missing.py:make", "does not exist"),
    ("examples.custom_model", "is not a zoo model"),
    (":make", "must be a zoo name or 'package.module:factory'"),
    ("examples.custom_model:BlockNet.Residual", r"must be callable without arguments \(it "
                                                r"requires width\)"),
])
def test_bad_references_name_the_problem(in_repo: Path, ref: str, message: str) -> None:
    with pytest.raises(ProblemError, match=message):
        resolve_model(ref)


def test_a_factory_must_return_a_chain(tmp_path: Path) -> None:
    path = write_module(tmp_path, """
        def number():
            return 3
        def plain():
            return nn.Linear(2, 2)
        def sequential():
            return nn.Sequential(nn.Linear(2, 2))
    """)
    with pytest.raises(ProblemError, match=r"returned a int, not an nn\.Module"):
        resolve_model(f"{path}:number", input_shape=(2,))
    with pytest.raises(ProblemError, match="has no pipesl_units"):
        resolve_model(f"{path}:plain", input_shape=(2,))
    with pytest.raises(ProblemError, match="input_shape: is required"):
        resolve_model(f"{path}:sequential")
    with pytest.raises(ProblemError, match="no keyword arguments"):
        resolve_model(f"{path}:sequential", input_shape=(2,), num_classes=3)
    assert callable(load_factory(f"{path}:sequential"))


def test_zoo_reference_builds_the_registered_model() -> None:
    resolved = resolve_model("mlp", hidden=16)
    assert resolved.name == "mlp-digits" and resolved.loss == "classification"
    assert resolved.sample.shape == (64,)
    assert resolved.model.fc1.fc.out_features == 16
    tokens = resolve_model("gpt2", input_shape=(8,), depth=1, dim=32, heads=2, vocab_size=50)
    assert tokens.sample.dtype == torch.int64 and tokens.loss == "lm"
    assert int(tokens.sample.max()) < 50  # drawn from the model's own vocabulary
    assert tokens.model(tokens.sample.unsqueeze(0)).shape == (1, 8, 50)
