"""``pipesl profile``, ``pipesl models`` and ``pipesl calibrate``; torch stays optional."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from profiling_cli import run_cli

from pipesl.problem.io import load_model, load_network
from pipesl.problem.parse import model_from_dict

REPO = Path(__file__).resolve().parents[2]
F32 = 4


def fwd_total(doc: dict) -> float:
    return sum(layer["fwd_flops"] for layer in doc["layers"])


def test_resnet50_profile_matches_published_flops(resnet50_cli_profile: dict) -> None:
    model = model_from_dict(resnet50_cli_profile)
    assert model.num_layers == 18 and model.input_bytes == 3 * 224 * 224 * F32
    # torchvision docs: ResNet-50 4.09 GMAC (FLOPs = 2 x MACs); the must-show bound is 3 %.
    assert fwd_total(resnet50_cli_profile) == pytest.approx(2 * 4.09e9, rel=0.02)
    stem, layer1_0 = model.layers[0], model.layers[1]
    assert stem.out_bytes == 64 * 56 * 56 * F32  # after the 3x3/2 max-pool
    assert stem.param_bytes == (64 * 3 * 7 * 7 + 2 * 64) * F32
    assert layer1_0.out_bytes == 256 * 56 * 56 * F32
    assert model.layers[-1].param_bytes == (2048 * 1000 + 1000) * F32


def test_vgg16_profile_matches_published_flops(vgg16_cli_profile: dict) -> None:
    model = model_from_dict(vgg16_cli_profile)
    # torchvision docs: VGG-16 15.47 GMAC.
    assert fwd_total(vgg16_cli_profile) == pytest.approx(2 * 15.47e9, rel=0.02)
    conv1_1 = model.layers[0]
    assert conv1_1.out_bytes == 64 * 224 * 224 * F32
    assert conv1_1.param_bytes == (64 * 3 * 9 + 64) * F32
    fc1 = next(x for x in model.layers if x.name == "fc1")
    assert fc1.fwd_flops == 2 * 512 * 7 * 7 * 4096
    assert fc1.param_bytes == (512 * 7 * 7 * 4096 + 4096) * F32
    assert vgg16_cli_profile["source"].startswith("pipesl profile vgg16 --input-shape 3x224x224")


def test_user_model_by_module_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    doc = json.loads(run_cli("profile", "examples.custom_model:make", "--json"))
    model = model_from_dict(doc)
    assert [x.name for x in model.layers] == ["conv1", "conv2", "conv3", "head"]
    assert model.input_bytes == 3 * 32 * 32 * F32


def test_user_model_by_file_written_as_yaml(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "blocks.yaml"
    table = run_cli("profile", "examples/custom_model.py:make_blocks", "--input-shape", "32",
                    "--out", str(out))
    assert "blocks_3" in table and "total" in table
    model = load_model(out)
    assert [x.name for x in model.layers] == ["blocks_0", "blocks_1", "blocks_2", "blocks_3"]
    assert model.layers[0].fwd_flops == 2 * 32 * 32


def test_a_profiled_user_model_is_planned(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    from pipesl.problem.io import load_problem
    from pipesl.solvers import solve

    monkeypatch.chdir(REPO)
    run_cli("profile", "examples.custom_model:make", "--out", str(tmp_path / "mine.yaml"))
    problem_file = tmp_path / "problem.yaml"
    problem_file.write_text(
        f"network: {REPO / 'examples' / 'tiny-line.yaml'}\n"  # its network section
        "model: mine.yaml\n"
        "training: {source: src, batch_size: 16}\n")
    problem = load_problem(problem_file)
    assert problem.model.name == "make" and problem.model.num_layers == 4
    result = solve(problem, objective="analytic")
    stages = result.plan.stages
    assert stages[0].node == "src" and stages[-1].last_layer == 4


def test_layer_granularity_and_json_file(tmp_path: Path) -> None:
    out = tmp_path / "cnn.json"
    run_cli("profile", "cnn", "--granularity", "layer", "--batch", "2", "--out", str(out))
    names = [x.name for x in load_model(out).layers]
    assert names[:2] == ["conv1.conv", "conv1.relu"] and "fc1.flatten" in names


def test_models_lists_the_zoo() -> None:
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json"))}
    assert rows["resnet50-imagenet"]["units"] == 18
    assert rows["gpt2-small"]["parameters"] == 124_439_808
    assert "resnet50" in rows["resnet50-imagenet"]["aliases"]
    assert "vgg16-cifar" in run_cli("models")


def test_calibrate_writes_a_node_file(tmp_path: Path) -> None:
    out = tmp_path / "node.yaml"
    report = json.loads(run_cli("calibrate", "cnn-digits", "--batch-sizes", "4,32,128",
                                "--repeats", "2", "--id", "laptop", "--json",
                                "--out", str(out)))
    assert report["node"]["id"] == "laptop" and report["node"]["flops"] > 0
    assert [u["name"] for u in report["units"]] == ["conv1", "conv2", "pool", "fc1", "head"]
    network = load_network(out)
    assert [n.id for n in network.nodes] == ["laptop"] and network.nodes[0].can_compute


def run_main(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from pipesl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (("profile", "resnet50", "--input-shape", "3x224xabc"),
     "error: --input-shape: '3x224xabc' must be positive integers joined by 'x'"),
    (("profile", "mlp", "--out", "profile.txt"),
     "error: --out profile.txt: has the extension '.txt'; give a file name ending in .json"),
    (("profile", "resnet51"), "error: model: 'resnet51' is not a zoo model"),
    (("calibrate", "mlp", "--batch-sizes", "4"), "error: --batch-sizes: '4' needs at least two"),
])
def test_domain_errors_are_one_line(args: tuple[str, ...], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(*args, capsys=capsys)
    assert code == 1 and err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("command", ["profile", "models", "calibrate"])
def test_without_torch_the_commands_say_how_to_install_it(
        command: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    args = (command, "mlp") if command != "models" else (command,)
    code, err = run_main(*args, capsys=capsys)
    assert (code, err) == (1, "error: torch is not installed; pip install 'pipesl[torch]'\n")


def test_pipesl_and_its_cli_import_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; import pipesl, pipesl.cli, "
            "pipesl.cli.profile; assert 'pipesl.models' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
