"""The shipped model profiles: the zoo's match its models, and the profiler agrees with the
analytic profiles of ``tools/analytic_profiles.py`` (``vgg16-cifar``, ``resnet50-imagenet``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from torch import nn

from pipesl.models import get_model
from pipesl.problem.io import load_model
from pipesl.problem.parse import model_from_dict
from pipesl.problem.scenarios import builtin_names, builtin_path
from pipesl.problem.types import ChainModel
from pipesl.profiling import profile

REPO = Path(__file__).resolve().parents[2]
ANALYTIC = ("vgg16-cifar", "resnet50-imagenet")


def load_tool() -> ModuleType:
    path = REPO / "tools" / "make_zoo_profiles.py"
    spec = importlib.util.spec_from_file_location("make_zoo_profiles", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def test_every_zoo_profile_is_shipped_and_matches_its_model() -> None:
    shipped = set(builtin_names("model"))
    assert set(TOOL.SHIPPED) | set(ANALYTIC) <= shipped
    for name in TOOL.SHIPPED:
        profile_ = load_model(name)
        with torch.device("meta"):
            model = get_model(name)
        # A plan's layer i is unit i of get_model(name): same count, same names.
        assert [x.name for x in profile_.layers] == [n for n, _ in model.named_children()]
        assert profile_.name == name


def _bn_statistics_bytes(unit: nn.Module) -> int:
    # Per-channel mean and inverse std that BN saves for backward (float32).
    return sum(2 * 4 * m.num_features for m in unit.modules() if isinstance(m, nn.BatchNorm2d))


def _compare(measured: ChainModel, analytic: ChainModel, model: nn.Sequential) -> None:
    """Per unit: forward FLOPs, output and parameter bytes equal; held bytes and backward
    FLOPs equal up to the documented differences of convention."""
    assert measured.input_bytes == analytic.input_bytes
    assert len(measured.layers) == len(analytic.layers)
    units = dict(model.named_children())
    for i, (m, a) in enumerate(zip(measured.layers, analytic.layers, strict=True)):
        # The analytic file names blocks "layer1.0" (torchvision); PyTorch forbids dots in
        # child names, so the zoo's unit is "layer1_0".
        assert m.name == a.name.replace(".", "_")
        assert (m.fwd_flops, m.out_bytes, m.param_bytes) == (
            a.fwd_flops, a.out_bytes, a.param_bytes), m.name
        # The first unit computes no input gradient (the analytic file assumes 2 x forward).
        assert m.bwd_flops == (m.fwd_flops if i == 0 else a.bwd_flops), m.name
        unit = units[m.name]
        extra = _bn_statistics_bytes(unit)
        drops = [mod for mod in unit.modules() if isinstance(mod, nn.Dropout)]
        if drops:  # CPU dropout keeps a float32 mask, not the 1-byte bool mask of CUDA
            extra += 3 * (m.out_bytes // 4)
        assert m.act_bytes == a.act_bytes + extra, m.name


def test_profiler_agrees_with_analytic_vgg16_cifar() -> None:
    torch.manual_seed(0)
    _compare(profile("vgg16-cifar"), load_model("vgg16-cifar"),
             get_model("vgg16-cifar"))


def test_profiler_agrees_with_analytic_resnet50(resnet50_cli_profile: dict) -> None:
    with torch.device("meta"):
        model = get_model("resnet50-imagenet")
    _compare(model_from_dict(resnet50_cli_profile), load_model("resnet50-imagenet"), model)


@pytest.mark.slow
def test_regenerating_the_zoo_profiles_reproduces_the_shipped_files() -> None:
    for name in TOOL.SHIPPED:
        fresh = TOOL.document(name, TOOL.profile_zoo(name))
        shipped = yaml.safe_load(builtin_path("model", name).read_text())
        assert fresh == shipped, name


def test_every_zoo_name_and_alias_is_usable_in_a_problem() -> None:
    from pipesl.models import list_models
    from pipesl.problem import problem_from_dict
    from pipesl.problem.scenarios import MODEL_ALIASES

    aliases = {alias: spec.name for spec in list_models() for alias in spec.aliases}
    assert aliases == MODEL_ALIASES
    for name in [spec.name for spec in list_models()] + sorted(aliases):
        problem = problem_from_dict({"network": "edge-campus", "model": name,
                                     "training": {"source": "dev0", "batch_size": 8}})
        assert problem.model.name == aliases.get(name, name)
