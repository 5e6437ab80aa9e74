"""``pipesl experiment``: options, outputs, configs, errors; ``all --quick`` end to end (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipesl.cli import app, main
from pipesl.experiments.config import SweepConfig, config_from_dict

runner = CliRunner()


def test_show_config_prints_loadable_yaml() -> None:
    res = runner.invoke(app, ["experiment", "bandwidth", "--quick", "--show-config"])
    assert res.exit_code == 0, res.output
    cfg = config_from_dict(SweepConfig, yaml.safe_load(res.output))
    assert cfg.vary == "bandwidth_scale" and cfg.seeds == 2


def test_config_file_and_seeds_override(tmp_path: Path) -> None:
    conf = tmp_path / "mine.yaml"
    conf.write_text("name: mine\nvary: batch_size\nvalues: [8, 16]\nseeds: 3\n"
                    "methods: [exact, no_pipeline]\n"
                    "instance: {n_nodes: 6, topology: line}\n")
    res = runner.invoke(app, ["experiment", "batch", "--config", str(conf), "--seeds", "1",
                              "--out", str(tmp_path), "--no-plots"])
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "mine" / "mine.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 1 * 2  # header + values x seeds x methods
    assert "exact_beaten=0" in res.output


def test_one_quick_experiment_writes_every_output(tmp_path: Path) -> None:
    res = runner.invoke(app, ["experiment", "microbatch", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "microbatch").iterdir())
    assert names == ["microbatch-summary.csv", "microbatch.csv", "microbatch.md",
                     "microbatch.png"]


@pytest.mark.parametrize(("args", "message"), [
    (["experiment", "nope"], "is not an experiment"),
    (["experiment", "all", "--config", "x.yaml"], "applies to one experiment"),
])
def test_errors_are_one_line(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_all_quick_runs_end_to_end(tmp_path: Path) -> None:
    """The CI smoke run of the planning study (about 35-50 s on two shared cores)."""
    proc = subprocess.run([sys.executable, "-m", "pipesl", "experiment", "all", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from pipesl.experiments.suite import EXPERIMENTS, PLANNING

    assert "adaptation" in EXPERIMENTS and "adaptation" not in PLANNING
    assert not (tmp_path / "adaptation").exists()  # trains; run by name
    for name in PLANNING:
        folder = tmp_path / name
        assert (folder / f"{name}.csv").exists() and (folder / f"{name}.png").exists()
        assert "exact_beaten = 0" in (folder / f"{name}.md").read_text()
    assert "no_pipeline" in (tmp_path / "headline.md").read_text()
