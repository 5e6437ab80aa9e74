"""Commands that plan one data owner refuse a problem with several, in one line (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipesl.cli import main

OWNERS = """\
network:
  nodes:
    - {id: a, flops: "1 TFLOPS"}
    - {id: b, flops: "1 TFLOPS"}
    - {id: srv, flops: "10 TFLOPS"}
  links:
    - {source: a, target: srv, bandwidth: "1 Gbps"}
    - {source: b, target: srv, bandwidth: "1 Gbps"}
model:
  name: m
  input_bytes: 3072
  layers:
    - {name: l1, fwd_flops: 1.0e+9, out_bytes: 1000}
    - {name: l2, fwd_flops: 1.0e+9, out_bytes: 10}
training:
  sources: [{node: a, batch_size: 8}, {node: b, batch_size: 8}]
"""

PLAN = '{"stages": [{"node": "a", "layers": [1, 2]}], "routes": [], "micro_batch_size": 8}'


@pytest.mark.parametrize("command", ["compare", "evaluate", "replan", "probe", "testbed"])
def test_single_owner_commands_refuse_several_owners(command: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    problem = tmp_path / "owners.yaml"
    problem.write_text(OWNERS)
    plan = tmp_path / "plan.json"
    plan.write_text(PLAN)
    args = [command, str(problem)]
    if command in ("evaluate", "replan"):
        args[2:2] = ["--plan", str(plan)] if command == "replan" else [str(plan)]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    line = " ".join(lines[0].split())
    assert line.startswith("error: training.sources"), line
    assert "has 2 data owners" in line and f"pipesl {command} takes" in line, line
