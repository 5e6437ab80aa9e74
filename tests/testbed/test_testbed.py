"""A 3-namespace job end to end: src -> r -> a over tc-shaped veth links, ``pipesl worker``
in each namespace (devices emulated, links paced by the kernel), the same parameters as a
single-process run, and nothing left behind — after success, a failing worker, or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pipesl.exceptions import RuntimeSetupError
from pipesl.plan import Plan, Stage
from pipesl.problem import Problem, compose_problem
from pipesl.problem.io import load_model, network_from_dict
from pipesl.runtime import build_config, train_reference
from pipesl.runtime import checkpoint as ckpt
from pipesl.testbed import Testbed, kernel_problem, latency_padding, netns_unavailable
from pipesl.testbed.run import train_testbed

REASON = netns_unavailable()
pytestmark = [pytest.mark.distributed,
              pytest.mark.skipif(REASON is not None, reason=REASON or "")]

NET = {"nodes": [
    {"id": "src", "kind": "device", "flops": 2e8, "memory": 1e9, "overhead": 0.002},
    {"id": "r", "kind": "relay", "compute": False},
    {"id": "a", "kind": "server", "flops": 4e8, "memory": 1e9, "overhead": 0.002}],
    "links": [
    {"source": "src", "target": "r", "bandwidth": 2e7, "latency": 0.002, "duplex": "full"},
    {"source": "r", "target": "a", "bandwidth": 5e7, "latency": 0.001, "duplex": "full"}]}
STEPS = 3


def _problem() -> Problem:
    return compose_problem(network_from_dict(NET), load_model("cnn-digits"),
                           {"source": "src", "batch_size": 12}, name="three")


PLAN = Plan((Stage("src", 1, 2), Stage("a", 3, 5)), (("src", "r", "a"),), 4)


def _namespaces() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.split()}


def _gone(tb: Testbed) -> None:
    """No namespace of ``tb`` remains, no veth of it in the root namespace, and no qdisc of
    it anywhere (its qdiscs lived on its veths, inside its namespaces)."""
    assert not set(tb.namespaces.values()) & _namespaces()
    devs = {d for ln in tb.links for d in (ln.source_dev, ln.target_dev)}
    assert devs and not devs & set(os.listdir("/sys/class/net"))
    root = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    assert not any(d in root for d in devs)


def _trained_state(root: Path) -> dict[str, torch.Tensor]:
    latest = ckpt.find_latest(root)
    assert latest is not None and latest.completed == STEPS
    state: dict[str, torch.Tensor] = {}
    for entry in latest.manifest["units"]:
        payload = torch.load(Path(latest.folder) / entry["file"], weights_only=True)
        state.update(payload["state"])
    return state


def test_a_three_namespace_job_trains_like_one_process(tmp_path: Path) -> None:
    problem = kernel_problem(_problem())
    with Testbed(problem, ("src", "r", "a")) as tb:
        assert [ln.rate_bps for ln in tb.links] == [2e7, 5e7]
        text = subprocess.run(["tc", "-n", tb.namespaces["r"], "qdisc", "show"],
                              capture_output=True, text=True, check=True).stdout
        assert text.count("qdisc tbf") == 2, text  # one per veth end of the relay
        pad = latency_padding(tb, problem)
        assert pad == (("src", "r", round(0.002 * 2e7 * 1448 / 1514 / 8)),
                       ("r", "a", round(0.001 * 5e7 * 1448 / 1514 / 8)))
        result = train_testbed(tb, problem, PLAN, tmp_path, steps=STEPS, padding=pad,
                               options=("--data", "digits", "--checkpoint-dir",
                                        str(tmp_path / "ckpt")), timeout_s=300)
        stats = tb.qdisc_stats()
    _gone(tb)
    assert [n["node"] for n in result["nodes"]] == ["src", "a", "r"]
    assert result["emulate"] and not result["virtual_clock"] and not result["pace_links"]
    assert len(result["iterations"]) == STEPS
    # the activations crossed the shaped links: every egress qdisc of the route sent bytes
    assert all(counts["bytes"] > 0 for counts in stats.values()), stats
    reference, _ = train_reference(problem, build_config(steps=STEPS, data="digits"))
    trained = _trained_state(tmp_path / "ckpt")
    assert trained.keys() == reference.keys()
    for name, value in reference.items():
        assert torch.allclose(trained[name], value, rtol=1e-5, atol=1e-6), name


def test_a_failing_worker_fails_the_job_and_leaves_nothing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    problem = kernel_problem(_problem())
    monkeypatch.setenv("PIPESL_FAULT", "raise:node=a,iteration=1,phase=F")
    tb = Testbed(problem, ("src", "r", "a"))
    with pytest.raises(RuntimeSetupError, match="testbed: node a failed"), tb:
        train_testbed(tb, problem, PLAN, tmp_path, steps=STEPS, timeout_s=300)
    _gone(tb)


def test_sigterm_removes_the_testbed(tmp_path: Path) -> None:
    script = tmp_path / "hold.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_testbed import _problem
        from pipesl.testbed import Testbed
        with Testbed(_problem(), ("src", "r", "a")) as tb:
            print(" ".join(tb.namespaces.values()), flush=True)
            time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    names = set(proc.stdout.readline().split())
    assert len(names) == 3 and names <= _namespaces()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    time.sleep(0.1)
    assert not names & _namespaces()
