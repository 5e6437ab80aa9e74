"""The CLI's help and start-up: switches shown as switches, every planner described, lazy
imports (``pipesl --help`` loads neither numpy, networkx nor scipy), shell completion.

Start-up *times* are measured in ``benchmarks/cli_startup.py`` (docs/cli.md), not here.
"""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from pipesl.cli import app
from pipesl.cli.experiment import EXPERIMENT_NAMES
from pipesl.cli.plan import METHODS

runner = CliRunner()


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_switches_show_no_bool_placeholder() -> None:
    for command in ("plan", "simulate", "train", "show", "evaluate", "experiment"):
        text = _help(command)
        assert "--json" in text or "--quick" in text
        assert "<bool>" not in text, command


def test_a_switch_takes_no_value() -> None:
    result = runner.invoke(app, ["scenarios", "--json", "true"])
    assert result.exit_code == 2  # usage error: "true" is an unexpected extra argument


def test_the_events_example_keeps_its_brackets() -> None:
    assert "link: [a, b], bandwidth_factor: 0.2" in _help("train")


def test_every_method_is_described_in_plan_help() -> None:
    text = " ".join(_help("plan").split())
    for name, summary in METHODS.items():
        assert f"{name} {' '.join(summary.split())}" in text.replace("│ ", "").replace(" │", "")


def test_the_help_lists_match_the_registries() -> None:
    from pipesl.experiments.suite import EXPERIMENTS
    from pipesl.solvers import solver_names

    assert sorted(METHODS) == solver_names()
    assert tuple(EXPERIMENTS) == EXPERIMENT_NAMES


def test_help_imports_no_numerics() -> None:
    code = ("import sys; from pipesl.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'networkx', 'scipy', 'matplotlib', 'torch') "
            "if m in sys.modules]\nprint('HEAVY', heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "HEAVY []" in done.stderr, done.stderr


def test_shell_completion_is_offered() -> None:
    text = _help()
    assert "--install-completion" in text and "--show-completion" in text
