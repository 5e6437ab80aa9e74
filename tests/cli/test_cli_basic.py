"""The command line: show, scenarios, evaluate, --version, and clean errors (exit 1, one line).

Output checks run in-process through typer's runner (fast); exit codes and stderr run the real
program in a subprocess (``python -m pipesl``), as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import pipesl
from pipesl.cli import app, main
from pipesl.problem import DEFAULT_SCENARIO, load_problem, problem_to_dict

PROBLEM = """\
name: cli-line
description: a source, a relay and a server
network:
  nodes:
    - {id: dev0, flops: "1 TFLOPS", memory: "1 GB", overhead: "1 ms"}
    - {id: r1, compute: false}
    - {id: es2, flops: "4 TFLOPS", memory: "8 GiB"}
  links:
    - {source: dev0, target: r1, bandwidth: "100 Mbps", latency: "1 ms"}
    - {source: r1, target: es2, bandwidth: "1 Gbit/s", duplex: full}
model:
  name: two-layers
  input_bytes: 3072
  layers:
    - {name: a, fwd_flops: 1.0e+9, out_bytes: 10000, param_bytes: 1000}
    - {name: b, fwd_flops: 2.0e+9, out_bytes: 100, param_bytes: 5000}
training: {source: dev0, batch_size: 32}
"""
PLAN: dict[str, Any] = {
    "micro_batch_size": 8,
    "stages": [{"node": "dev0", "first_layer": 1, "last_layer": 1},
               {"node": "es2", "first_layer": 2, "last_layer": 2}],
    "routes": [["dev0", "r1", "es2"]],
}
# SPEC section 3 by hand, b = 8, M = 4:
T_DEV0 = 8 * (1e9 + 2e9) / 1e12 + 2 * 1e-3
X_A = 8 * 8 * 1e4 / 1e8 + 1e-3
X_B = 8 * 8 * 1e4 / 1e9
T_ES2 = 8 * (2e9 + 4e9) / 4e12
OBJECTIVE = T_DEV0 + 2 * X_A + 2 * X_B + T_ES2 + 3 * T_DEV0

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    problem = tmp_path / "problem.yaml"
    problem.write_text(PROBLEM)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    return problem, plan


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipesl", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 1, nothing on stdout, exactly one line on stderr that names the problem."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- subprocess: the real program


def test_console_script_version() -> None:
    script = Path(sys.executable).with_name("pipesl")
    assert script.exists(), "the package is installed in this venv with its console script"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"pipesl {pipesl.__version__}"


def test_python_m_pipesl_help() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("show", "scenarios", "evaluate", "demo"):
        assert command in proc.stdout


def test_missing_problem_file_is_one_line(tmp_path: Path, files: tuple[Path, Path]) -> None:
    assert_clean_error(run("evaluate", str(tmp_path / "nope.yaml"), str(files[1])),
                       "nope.yaml", "is neither an existing file nor a built-in scenario")


def test_malformed_problem_is_one_line(tmp_path: Path, files: tuple[Path, Path]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROBLEM.replace('"100 Mbps"', '"8 GB"'))
    assert_clean_error(run("evaluate", str(bad), str(files[1])),
                       "network.links[0].bandwidth", "unknown unit 'GB'")


def test_structurally_invalid_plan_is_one_line(tmp_path: Path,
                                               files: tuple[Path, Path]) -> None:
    plan = tmp_path / "bad-plan.json"
    plan.write_text(json.dumps({**PLAN, "routes": [["dev0", "es2"]]}))
    assert_clean_error(run("evaluate", str(files[0]), str(plan)),
                       "plan.routes[0]", "is not a link")


# ---------------------------------------------------------------- in process: main()


def main_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``pipesl.cli.main`` in-process; it must exit 1 with one line on stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    assert info.value.code == 1, (captured.out, captured.err)
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_main_turns_every_domain_error_into_one_line(
        tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    problem = str(files[0])
    assert "does not exist" in main_error(capsys, "evaluate", problem,
                                          str(tmp_path / "nope.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"network": ')
    assert "is not valid JSON" in main_error(capsys, "show", str(broken))
    assert "is not valid JSON" in main_error(capsys, "evaluate", problem, str(broken))
    no_stage = tmp_path / "empty-plan.json"
    no_stage.write_text(json.dumps({**PLAN, "stages": []}))
    assert "plan.stages: is empty" in main_error(capsys, "evaluate", problem, str(no_stage))
    wrong_b = tmp_path / "b.json"
    wrong_b.write_text(json.dumps({**PLAN, "micro_batch_size": 64}))
    assert "micro_batch_size" in main_error(capsys, "evaluate", problem, str(wrong_b))
    # A multi-line YAML error still becomes one line.
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("network:\n  nodes: [a, b\n")
    assert "is not valid YAML" in main_error(capsys, "show", str(bad_yaml))
    infeasible = tmp_path / "alone.yaml"
    doc = yaml.safe_load(PROBLEM)
    doc["network"]["links"] = []
    doc["network"]["nodes"][0]["memory"] = 10
    infeasible.write_text(yaml.safe_dump(doc))
    assert "reaches no other compute node" in main_error(capsys, "show", str(infeasible))
    assert "is neither an existing file nor a built-in scenario" in main_error(
        capsys, "show", "no-such-scenario")


def test_main_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate"])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------- in process: the output


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result


def test_show_a_problem_file(files: tuple[Path, Path]) -> None:
    result = invoke("show", str(files[0]))
    assert result.exit_code == 0
    for text in ("cli-line", "dev0", "r1", "es2", "100 Mbit/s", "two-layers", "Training"):
        assert text in result.stdout, text
    result = invoke("show", str(files[0]), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == problem_to_dict(load_problem(files[0]))


def test_show_the_default_scenario() -> None:
    result = invoke("show")
    assert result.exit_code == 0, result.output
    assert DEFAULT_SCENARIO == "edge-campus"
    doc = json.loads(invoke("show", "--json").stdout)
    assert len(doc["network"]["nodes"]) >= 3
    assert doc["model"]["layers"]


def test_scenarios_lists_the_default() -> None:
    result = invoke("scenarios")
    assert result.exit_code == 0
    assert "edge-campus" in result.stdout
    items = json.loads(invoke("scenarios", "--json").stdout)
    assert {"kind": "scenario", "name": "edge-campus"} in [
        {"kind": i["kind"], "name": i["name"]} for i in items]
    assert all(set(i) == {"kind", "name", "description"} for i in items)


def test_evaluate_json_is_the_spec_object(files: tuple[Path, Path]) -> None:
    result = invoke("evaluate", str(files[0]), str(files[1]), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["objective_s"] == pytest.approx(OBJECTIVE, rel=1e-12)
    assert doc["first_micro_batch_s"] == pytest.approx(T_DEV0 + 2 * X_A + 2 * X_B + T_ES2)
    assert doc["bottleneck_resource"] == "node:dev0"
    assert doc["resource_loads"] == pytest.approx({
        "node:dev0": T_DEV0, "link:dev0-r1": 2 * X_A, "link:r1>es2": X_B,
        "link:es2>r1": X_B, "node:es2": T_ES2})
    assert (doc["batch_size"], doc["micro_batch_size"], doc["num_micro_batches"]) == (32, 8, 4)
    assert doc["stages"] == PLAN["stages"]
    assert doc["routes"] == PLAN["routes"]
    assert doc["feasible"] is True and doc["violations"] == []
    assert set(doc["memory"]) == {"dev0", "es2"}


def test_evaluate_human_output(files: tuple[Path, Path]) -> None:
    result = invoke("evaluate", str(files[0]), str(files[1]))
    assert result.exit_code == 0
    assert "T = " in result.stdout
    assert "node:dev0" in result.stdout
    assert "feasible" in result.stdout


def test_evaluate_memory_breaking_plan_is_reported_not_refused(tmp_path: Path,
                                                               files: tuple[Path, Path]) -> None:
    doc = yaml.safe_load(PROBLEM)
    doc["network"]["nodes"][2]["memory"] = 100
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(doc))
    result = invoke("evaluate", str(small), str(files[1]), "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["feasible"] is False
    assert len(out["violations"]) == 1 and "es2" in out["violations"][0]
    assert out["objective_s"] == pytest.approx(OBJECTIVE, rel=1e-12)
    human = invoke("evaluate", str(small), str(files[1]))
    assert "infeasible" in human.stdout
