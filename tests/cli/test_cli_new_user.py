"""What a new user hits (issue 16): output paths checked before any work, warnings for
unreachable servers and plans over a node's memory, a bare network shown, errors that
recommend only options the command has."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipesl.cli import app, main

EXAMPLES = Path(__file__).parents[2] / "examples"

CUT = """\
network:
  nodes:
    - {id: dev, flops: "1 TFLOPS", memory: "8 GiB"}
    - {id: srv, flops: "10 TFLOPS", memory: "16 GiB"}
    - {id: far, flops: "10 TFLOPS"}
  links:
    - {source: srv, target: far, bandwidth: "1 Gbps"}
model:
  name: m
  input_bytes: 3072
  layers:
    - {name: a, fwd_flops: 1.0e+9, out_bytes: 1000}
    - {name: b, fwd_flops: 1.0e+9, out_bytes: 10}
training: {source: dev, batch_size: 8}
"""


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


Invoke = Callable[..., Run]


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``pipesl ARGS`` in process through ``main`` (domain errors become one line)."""

    def run(*args: str) -> Run:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def one_line_error(result: Any, *words: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    line = " ".join(lines[0].split())
    for word in words:
        assert word in line, line
    return line


# ---------------------------------------------------------------- item 3: output paths


@pytest.mark.parametrize(("option", "name", "words"), [
    ("--gantt", "", ("--gantt", "is a folder")),
    ("--gantt", "noext", ("--gantt", "has no extension", ".png")),
    ("--gantt", "g.txt", ("--gantt", "'.txt'", ".png, .svg or .pdf")),
    ("--map", "m.docx", ("--map", "'.docx'")),
    ("--trace", "missing/t.json", ("--trace", "does not exist")),
    ("--trace", "t", ("--trace", "has no extension", ".json")),
])
def test_simulate_refuses_a_bad_output_path_before_any_work(
        invoke: Invoke, tmp_path: Path, option: str, name: str, words: tuple[str, ...]) -> None:
    target = tmp_path / name if name else tmp_path
    result = invoke("simulate", "tiny-line-does-not-matter", option, str(target))
    # The path is refused before the problem is even loaded (that name does not exist).
    one_line_error(result, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["plan", "--out", "{d}"], ["plan", "--out", "{d}/plan"],
    ["train", "--steps", "1", "--out", "{d}/t1.json", "--gantt", "{d}/t1.txt"],
    ["train", "--trace", "{d}"], ["show", "--out", "{d}/p.docx"],
    ["replan", "edge-campus", "--plan", "x.json", "--out", "{d}/new"],
])
def test_every_command_checks_its_output_paths_first(invoke: Invoke, tmp_path: Path,
                                                     args: list[str]) -> None:
    result = invoke(*[a.format(d=tmp_path) for a in args])
    line = one_line_error(result)
    assert str(tmp_path) in line
    assert list(tmp_path.iterdir()) == []


def test_a_good_output_path_is_written_and_named(invoke: Invoke, tmp_path: Path) -> None:
    gantt = tmp_path / "g.svg"
    result = invoke("simulate", str(EXAMPLES / "tiny-line.yaml"), "--gantt", str(gantt))
    assert result.exit_code == 0, result.output
    assert gantt.is_file() and f"wrote Gantt chart {gantt}" in " ".join(result.output.split())


# ---------------------------------------------------------------- item 2: unreachable servers


def test_servers_without_a_path_from_the_source_are_named(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "cut.yaml"
    path.write_text(CUT)
    result = invoke("plan", str(path))
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "warning: 2 compute node(s) have no path from the source dev" in warning
    assert "srv, far" in warning
    assert "1 stage" in result.stdout


def test_a_connected_problem_gets_no_warning(invoke: Invoke) -> None:
    result = invoke("plan", str(EXAMPLES / "tiny-line.yaml"))
    assert result.exit_code == 0 and "warning" not in result.stderr


# ---------------------------------------------------------------- item 7: memory


def _over_memory(tmp_path: Path) -> tuple[Path, Path]:
    problem = tmp_path / "p.yaml"
    problem.write_text((EXAMPLES / "tiny-line.yaml").read_text().replace(
        'memory: "1 GB"', 'memory: "20 kB"'))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"micro_batch_size": 2, "routes": [],
                                "stages": [{"node": "src", "first_layer": 1, "last_layer": 4}]}))
    return problem, plan


def test_simulate_reports_a_plan_over_a_nodes_memory(invoke: Invoke, tmp_path: Path) -> None:
    problem, plan = _over_memory(tmp_path)
    result = invoke("simulate", str(problem), "--plan", str(plan), "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays clean JSON; the warning is on stderr
    warning = " ".join(result.stderr.split())
    assert "warning: the plan does not fit in memory" in warning and "src" in warning


class _Stop(Exception):
    pass


def test_train_reports_a_plan_over_a_nodes_memory_before_starting(
        invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import pipesl.cli.train as train_cli

    class Runtime:  # stands in for pipesl.runtime: stops where the processes would start
        RunConfig = dict

        @staticmethod
        def build_config(config: Any, **options: Any) -> Any:
            return options

        @staticmethod
        def make_job(*args: Any, **kwargs: Any) -> None:
            raise _Stop

    monkeypatch.setattr(train_cli, "_runtime", lambda: Runtime)
    problem, plan = _over_memory(tmp_path)
    with pytest.raises(_Stop):
        invoke("train", str(problem), "--plan", str(plan), "--steps", "1")
    assert "warning: the plan does not fit in memory" in " ".join(capsys.readouterr().err.split())


# ---------------------------------------------------------------- item 6: bare networks


def test_show_a_bare_topology_zoo_network_and_write_it_as_spec(invoke: Invoke,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "net.yaml"
    result = invoke("show", str(EXAMPLES / "zoo-mini.graphml"), "--geo-latency", "--out",
                    str(out))
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Nodes (4)" in text and "Links (4)" in text and "New York" in text
    assert "no compute nodes yet" in text
    from pipesl.problem import load_network

    written = load_network(out)
    link = written.link_between("New York", "Chicago")
    assert link is not None and link.bandwidth == 10e9 and link.latency > 5e-3


def test_show_a_builtin_network_by_name(invoke: Invoke) -> None:
    result = invoke("show", "metro-campus")
    assert result.exit_code == 0, result.output
    assert "(a network)" in result.stdout


# ---------------------------------------------------------------- item 4: train's errors


def test_train_error_recommends_no_option_train_lacks(invoke: Invoke, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    model = tmp_path / "umodel.py"
    model.write_text("import torch.nn as nn\n\n\ndef make():\n    return nn.Sequential("
                     "nn.Flatten(), nn.Linear(64, 10))\n")
    result = invoke("train", "--model", f"{model}:make", "--steps", "1")
    line = one_line_error(result, "input_shape", "make.input_shape = (3, 32, 32)")
    train_options = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    assert "--input-shape" not in train_options
    assert "train" not in line.split("--input-shape")[0].split(";")[-1]
