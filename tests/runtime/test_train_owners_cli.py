"""`pipesl train` on the built-in scenario with several data owners (campus-owners): the JSON
it prints (measured beside simulated, joint and per owner; the per-owner audit), and clean
errors for what several owners do not support."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipesl.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_train_campus_owners_json_with_the_audit(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    out = subprocess.run(
        [sys.executable, "-m", "pipesl", "train", "campus-owners", "--plan",
         str(EXAMPLES / "campus-owners.plan.json"), "--steps", "2", "--data", "digits",
         "--json", "--audit", str(audit)],
        capture_output=True, text=True, timeout=280, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["owners"] == ["cam0", "cam1", "cam2"] and doc["mode"] == "parallel"
    assert len(doc["iterations"]) == 2
    for it in doc["iterations"]:
        assert len(it["owner_measured_s"]) == len(it["owner_simulated_s"]) == 3
        assert it["measured_s"] == pytest.approx(max(it["owner_measured_s"]), rel=0.05)
        assert it["simulated_s"] == doc["simulated_s"] > 0
    assert doc["audit"]["ok"] and not doc["audit"]["violations"]
    assert all(n > 0 for n in doc["audit"]["per_owner"])
    assert "audit:" in out.stderr and audit.exists()


@pytest.mark.parametrize("option", [["--gantt", "x.png"], ["--adapt"],
                                    ["--inject-fault", "kill:node=edge0,iteration=0,phase=F"]])
def test_unsupported_options_are_one_line_errors(option: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "campus-owners", *option])
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert option[0] in lines[0] and "several data owners" in lines[0]
