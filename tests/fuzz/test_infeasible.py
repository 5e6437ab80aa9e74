"""Infeasible problems say which constraint binds and by how much.

Crafted cases for each constraint (memory on the source, a layer too big for every node, too
little memory in all, no contiguous split, a split that needs a node twice, 1f1b windows, an
isolated source, labels that cannot be reached) check the whole message; random tight problems
check that every InfeasibleError of the exact planner is one of those messages with a number,
and (on small problems) that exhaustive enumeration agrees no plan exists.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import expect_cli_error, expect_error, record

from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.problem import problem_from_dict
from pipesl.solvers import solve
from strategies import random_problem


def layers(params: list[float], act: float = 0.0) -> list[dict[str, Any]]:
    return [{"name": f"l{i + 1}", "fwd_flops": 1e6, "out_bytes": 1, "act_bytes": act,
             "param_bytes": p} for i, p in enumerate(params)]


def problem(memories: list[float], model: list[dict[str, Any]], *, links: Any = "line",
            **training: Any) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "flops": 1e12, "memory": m} for i, m in enumerate(memories)]
    if links == "line":
        links = [{"source": f"n{i}", "target": f"n{i + 1}", "bandwidth": 1e9}
                 for i in range(len(memories) - 1)]
    return {"network": {"nodes": nodes, "links": links},
            "model": {"input_bytes": 10, "layers": model},
            "training": {"source": "n0", "batch_size": 4, "state_factor": 1, **training}}


CASES: dict[str, tuple[dict[str, Any], type[Exception], str, str]] = {
    # name: (problem, error, field ("" for InfeasibleError), the message or its start)
    "memory on the source": (
        problem([100, 1e9], layers([500, 1])), InfeasibleError, "",
        "memory: the source 'n0' must run layer 1 (l1), which needs 500 B at micro-batch size 1,"
        " but it has 100 B (short by 400 B)"),
    "a layer too big for every node": (
        problem([1024, 1024], layers([10, 5120])), InfeasibleError, "",
        "memory: layer 2 (l2) alone needs 5 KiB at micro-batch size 1; the largest compute node "
        "reachable from the source, 'n0', has 1 KiB (short by 4 KiB)"),
    "total memory too small": (
        problem([384, 384, 384], layers([320, 320, 320, 320])), InfeasibleError, "",
        "memory: the model needs at least 1.25 KiB in all at micro-batch size 1, but the 3 "
        "compute nodes reachable from the source have 1.125 KiB together (short by 128 B)"),
    "no contiguous split": (
        problem([10, 3, 3], layers([6, 6, 2])), InfeasibleError, "",
        "memory: no split of the model fits at micro-batch size 1; the best split still "
        "overfills a node by 2 B: in it layers 1-2 (l1..l2) need 12 B on 'n0', which has 10 B"),
    "a node needed twice": (
        problem([10, 10, 10], layers([6, 6, 6, 6, 6])), InfeasibleError, "",
        "memory: the model fits at micro-batch size 1 only if a node ran two stages ('n0' runs "
        "layer 1 (l1); 'n1' runs layer 2 (l2); 'n0' runs layer 3 (l3)"),
    "1f1b windows": (
        problem([100, 100, 100], layers([0, 0, 0], act=60), schedule="1f1b",
                micro_batch_size=1), InfeasibleError, "",
        "memory: no split of the model fits at micro-batch size 1; the best split still "
        "overfills a node by 20 B: in it layer 1 (l1) needs 120 B on 'n0', which has 100 B"),
    "isolated source": (
        problem([10, 100], layers([20]), links=[]), InfeasibleError, "",
        "memory: the source 'n0' reaches no other compute node and the whole model needs 20 B "
        "at the smallest micro-batch size (1), but it has 10 B (short by 10 B)"),
    "labels unreachable": (
        problem([1e9, 1e9, 1e9], layers([1]), links=[{"source": "n0", "target": "n1",
                                                      "bandwidth": 1e9}], labels_at="n2"),
        ProblemError, "training.labels_at",
        "'n2' is not reachable from the source 'n0'; the last layer's output cannot get there"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crafted_infeasible_problems(name: str) -> None:
    doc, error, field, message = CASES[name]
    exc = expect_error("infeasible problems",
                       lambda: solve(problem_from_dict(doc), objective="analytic"), "", field,
                       message, error)
    if error is InfeasibleError:
        assert str(exc).startswith(message), str(exc)


@pytest.mark.parametrize("name", ["memory on the source", "no contiguous split",
                                  "isolated source"])
def test_crafted_infeasible_problems_through_the_cli(tmp_path: Any, name: str) -> None:
    import json

    path = tmp_path / "p.json"
    path.write_text(json.dumps(CASES[name][0]))
    line = expect_cli_error("infeasible problems (CLI)", ["plan", str(path)],
                            ("memory:",))
    # The infeasibility names the problem file it is about.
    assert line.startswith(f"error: {path}: {CASES[name][3]}"), line


BINDING = ("short by", "overfills a node by", "only if a node ran two stages")


@pytest.mark.parametrize("seed", range(40))
def test_every_infeasible_message_names_the_constraint_and_the_amount(seed: int) -> None:
    r = random.Random(seed)
    small = seed < 20
    try:
        p = random_problem(r, n_nodes=r.randint(2, 4 if small else 8),
                           n_layers=r.randint(1, 4 if small else 7), memory="tight",
                           batch_size=r.choice([1, 4, 16]))
    except InfeasibleError as exc:  # the source alone cannot hold the model
        record("infeasible problems", "InfeasibleError")
        assert "short by" in str(exc)
        return
    try:
        solve(p, time_limit=60, objective="analytic")
    except InfeasibleError as exc:
        record("infeasible problems", "InfeasibleError")
        message = str(exc)
        assert message.startswith("memory: "), message
        assert any(b in message for b in BINDING), message
        assert "restrictions" not in message, message
        if small:
            with pytest.raises(InfeasibleError):
                solve(p, "bruteforce", objective="analytic")
        return
    record("infeasible problems", "feasible (planned)")
