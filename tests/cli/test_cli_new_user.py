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


# ---------------------------------------------------------------- item 9: units and numbering


def test_memory_reads_in_binary_units(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(CUT.replace('memory: "8 GiB"', 'memory: "6 GiB"'))
    text = invoke("show", str(path)).stdout
    assert "6 GiB" in text and "6.44 GB" not in text


def test_profile_sizes_read_like_show() -> None:
    from pipesl.cli.profile import _size

    assert _size(1536) == "1.5 KiB" and _size(1500, "FLOP") == "1.5 kFLOP"


def test_one_stage_and_no_zero_lower_bound(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "cut.yaml"
    path.write_text(CUT)
    text = " ".join(invoke("plan", str(path), "--method", "greedy").stdout.split())
    assert "1 stage " in text or (text.count("1 stage") and "1 stages" not in text)
    assert "lower bound 0 s" not in text and "no lower bound" in text


def test_an_empty_file_is_named(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    one_line_error(invoke("plan", str(path)), f"{path}: is empty", "network, model, training")


def test_an_infeasible_problem_names_its_file(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "tight.yaml"
    # Loads (layer 1 fits on the source at b = 1), but no plan fits with b = 8.
    path.write_text(CUT.replace('memory: "8 GiB"', 'memory: "20 kB"')
                    .replace('memory: "16 GiB"', 'memory: "20 kB"')
                    .replace("out_bytes: 1000}", "out_bytes: 4000}")
                    .replace("    - {source: srv", "    - {source: dev, target: srv, bandwidth: "
                             "\"1 Gbps\"}\n    - {source: srv"))
    line = one_line_error(invoke("plan", str(path), "-b", "8"), f"{path}: memory:")
    assert line.startswith(f"error: {path}: memory:")


# ---------------------------------------------------------------- item 5: zoo names as models


def test_a_zoo_alias_names_a_shipped_profile(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("network: edge-campus\nmodel: resnet18\n"
                    "training: {source: dev0, batch_size: 8}\n")
    result = invoke("show", str(path))
    assert result.exit_code == 0, result.output
    assert "Model resnet18-imagenet: 10 layers" in result.stdout


def test_an_unknown_model_says_how_to_get_a_profile(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("network: edge-campus\nmodel: resnet34\n"
                    "training: {source: dev0, batch_size: 8}\n")
    one_line_error(invoke("plan", str(path)), "'resnet34' is neither a file nor a built-in",
                   "pipesl profile package.module:factory --out model.yaml")


# ---------------------------------------------------------------- item 11: new commands


def test_sweep_b_lists_every_distinct_m_and_its_best_is_the_optimum(
        invoke: Invoke, tmp_path: Path) -> None:
    from pipesl.cli.compare import sweep_sizes
    from pipesl.problem import load_problem
    from pipesl.solvers import solve

    path = str(EXAMPLES / "tiny-line.yaml")
    plot = tmp_path / "sweep.png"
    result = invoke("plan", path, "--sweep-b", "--objective", "analytic", "--json",
                    "--sweep-plot", str(plot))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    problem = load_problem(path)
    batch = problem.training.batch_size
    assert [r["micro_batch_size"] for r in rows] == sweep_sizes(batch)
    # Each b is the smallest with its M = ceil(B / b); every M from 1 to B appears once.
    assert sorted(r["num_micro_batches"] for r in rows) == sorted(
        {-(-batch // b) for b in range(1, batch + 1)})
    best = min(r["objective_s"] for r in rows if r["objective_s"] is not None)
    assert best == pytest.approx(solve(problem, objective="analytic").objective_s, rel=1e-12)
    for r in rows:
        fixed = solve(problem, micro_batch_size=r["micro_batch_size"], objective="analytic")
        assert r["objective_s"] == pytest.approx(fixed.objective_s, rel=1e-12)
    assert plot.stat().st_size > 5_000


def test_sweep_sizes_by_hand() -> None:
    from pipesl.cli.compare import sweep_sizes

    assert sweep_sizes(8) == [1, 2, 3, 4, 8]  # M = 8, 4, 3, 2, 1 (b = 5..7 repeat M = 2)
    assert sweep_sizes(1) == [1]


def test_compare_runs_each_planner_and_exact_is_best(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    result = invoke("compare", str(EXAMPLES / "tiny-line.yaml"), "--methods",
                    "exact,no_pipeline,greedy,bruteforce", "--objective", "analytic",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["exact", "no_pipeline", "greedy", "bruteforce"]
    assert rows["exact"]["objective_s"] == pytest.approx(rows["bruteforce"]["objective_s"])
    assert all(rows["exact"]["objective_s"] <= r["objective_s"] * (1 + 1e-12)
               for r in rows.values())
    assert rows["no_pipeline"]["micro_batch_size"] == 8  # b = B
    text = " ".join(result.stdout.split())
    assert "planners compared on the analytic T" in text and "greedy" in text


def test_compare_refuses_an_unknown_planner(invoke: Invoke) -> None:
    one_line_error(invoke("compare", "--methods", "exact,fastest"), "--methods",
                   "must name planners")


def test_evaluate_out_writes_what_json_prints(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    args = ("evaluate", str(EXAMPLES / "tiny-line.yaml"), str(EXAMPLES / "tiny-line.plan.json"))
    printed = json.loads(invoke(*args, "--json").stdout)
    result = invoke(*args, "--out", str(out))
    assert result.exit_code == 0 and json.loads(out.read_text()) == printed
    assert printed["analytic_s"] == pytest.approx(0.1639)  # tiny-line.yaml, by hand
    # A private GPipe chain: the simulated makespan is T (the closed form), and so is the bound.
    assert printed["objective"] == "makespan"
    assert printed["objective_s"] == pytest.approx(0.1639, rel=1e-9)
    assert printed["lower_bound_s"] == pytest.approx(0.1639, rel=1e-9)


def test_evaluate_reports_the_makespan_that_simulate_reports(invoke: Invoke,
                                                             tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert invoke("plan", "relay-line", "--objective", "analytic", "--out",
                  str(plan)).exit_code == 0
    doc = json.loads(invoke("evaluate", "relay-line", str(plan), "--json").stdout)
    sim = json.loads(invoke("simulate", "relay-line", "--plan", str(plan), "--json").stdout)
    assert doc["objective"] == "makespan"
    assert doc["objective_s"] == pytest.approx(sim["makespan_s"], rel=1e-9)
    assert doc["analytic_s"] == pytest.approx(sim["analytic_s"], rel=1e-9)
    # relay-line is 1F1B: the analytic optimum's makespan is well above its T (docs/planner.md).
    assert doc["objective_s"] > doc["analytic_s"] * 1.05
    assert doc["analytic_s"] < doc["lower_bound_s"] <= doc["objective_s"] * (1 + 1e-12)
    analytic = json.loads(invoke("evaluate", "relay-line", str(plan), "--objective", "analytic",
                                 "--json").stdout)
    assert analytic["objective"] == "analytic"
    assert analytic["objective_s"] == analytic["lower_bound_s"] == doc["analytic_s"]
    one_line_error(invoke("evaluate", "relay-line", str(plan), "--objective", "fastest"),
                   "--objective", "must be one of")


def test_simulate_plans_with_the_given_method(invoke: Invoke) -> None:
    from pipesl.problem import load_problem
    from pipesl.solvers import solve

    path = str(EXAMPLES / "tiny-line.yaml")
    doc = json.loads(invoke("simulate", path, "--method", "no_pipeline", "--json").stdout)
    flat = solve(load_problem(path), "no_pipeline", objective="analytic")
    assert doc["micro_batch_size"] == flat.micro_batch_size == 8
    assert doc["analytic_s"] == pytest.approx(flat.evaluation.objective_s)  # type: ignore[union-attr]


def test_a_write_that_fails_late_keeps_the_report(invoke: Invoke, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import pipesl.plotting

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipesl.plotting, "save_figure", full_disk)
    gantt = tmp_path / "g.png"
    result = invoke("simulate", str(EXAMPLES / "tiny-line.yaml"), "--gantt", str(gantt))
    one_line_error(result, f"--gantt {gantt}", "cannot be written (No space left on device)")
    assert "Simulated iteration" in result.stdout  # the report came first


def test_train_tables_number_iterations_from_zero() -> None:
    from types import SimpleNamespace as NS

    from pipesl.cli.train import reliability_lines, result_tables
    from pipesl.runtime.config import RunConfig, build_config

    config = build_config(RunConfig(), checkpoint_dir="ck")
    its = [NS(iteration=i, loss=1.0 / (i + 1), measured_s=0.1, simulated_s=0.1, analytic_s=0.1,
              error=0.0) for i in (3, 4, 5)]
    result = NS(config=config, schedule="gpipe", plan=NS(micro_batch_size=2), iterations=its,
                stages=[], hops=[], start_iteration=3, lost_iterations=None,
                checkpoints=(4, 6), audit=None)
    table = result_tables(result)[0]  # type: ignore[arg-type]
    assert [str(c) for c in table.columns[0]._cells] == ["3", "4", "5"]  # as in the JSON
    lines = reliability_lines(result)  # type: ignore[arg-type]
    # 3 iterations done (0-2), so the run resumed at iteration 3; checkpoints after 4 and 6
    # completed iterations are the ones after iterations 3 and 5.
    assert lines[0].startswith("resumed at iteration 3 from the checkpoint saved after "
                               "iteration 2")
    assert lines[1] == "checkpoints after iterations 3, 5 in ck"
