"""Many data owners trained across processes end with the parameters of the single-process
reference of the same semantics (float64, tight tolerance), and one owner is exactly today's
single-source runtime.

Each case spawns 4 processes (owners o0 and o1, relay r, server s; owners_runtime_cases.py) with
emulation on at a tenth of the planned durations.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from owners_runtime_cases import owner_plan, owners_plan, owners_problem

from pipesl.plan import OwnersPlan
from pipesl.runtime import RunConfig, build_config, train
from pipesl.runtime.owners import train_owners, train_owners_reference

CONFIG = build_config(steps=3, dtype="float64", time_scale=0.1, lr=0.1, momentum=0.5,
                     return_state=True, data="digits", timeout_s=60.0)


def _assert_same(state: dict[int, dict[str, torch.Tensor]] | None,
                 reference: dict[int, dict[str, torch.Tensor]]) -> None:
    assert state is not None and set(state) == set(reference)
    for o, ref in reference.items():
        assert set(state[o]) == set(ref)
        for key, value in ref.items():
            assert torch.allclose(state[o][key], value, rtol=1e-10, atol=1e-12), (o, key)


def _check(problem: Any, plan: OwnersPlan, config: RunConfig) -> Any:
    result = train_owners(problem, plan, config)
    reference, losses = train_owners_reference(problem, plan, config)
    _assert_same(result.state, reference)
    assert [r.losses for r in result.iterations] == [
        pytest.approx(row, rel=1e-12) for row in losses]
    for r in result.iterations:  # every owner timed against its simulated time
        assert len(r.owner_measured_s) == 2 and min(r.owner_measured_s) > 0
        assert r.simulated_s == result.simulated_s > 0
    return result


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_per_owner_replicas_with_a_relay_on_another_owners_node(tmp_path: Any) -> None:
    # owner 0: o0[1-2] -> (o0, o1, r, s) -> s[3-5]; owner 1: o1[1-2] -> (o1, r, s) -> s[3-5]
    problem = owners_problem(replicas="per-owner", batch_sizes=(8, 6))
    plan = owners_plan(b=4, via_o1=True)
    audit = tmp_path / "audit.jsonl"
    result = _check(problem, plan, CONFIG.with_options(audit=str(audit)))
    assert result.mode == "parallel" and result.replicas == "per-owner"
    report = result.audit
    assert report is not None and report.ok, report.violations
    assert not report.raw_input_crossings
    assert report.relayed and all("o1" in line for line in report.relayed)
    assert report.per_owner[0] > 0 and report.per_owner[1] > 0
    roles = {n: roles for n, _, roles in result.nodes}
    assert "north: relay" in roles["o1"] and "south: source" in roles["o1"]


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_shared_server_1f1b_with_one_ushaped_owner(tmp_path: Any) -> None:
    # owner 1 keeps its labels (labels_at o1): the logits come back s -> r -> o1
    problem = owners_problem(replicas="shared", labels_at_1=True, batch_sizes=(8, 7),
                             schedule="1f1b")
    plan = owners_plan(b=4, labels_at_1=True)
    audit = tmp_path / "audit.jsonl"
    result = _check(problem, plan, CONFIG.with_options(audit=str(audit)))
    report = result.audit
    assert report is not None and report.ok, report.violations
    assert not any("south" in line for line in report.label_crossings)
    assert any("north" in line for line in report.label_crossings)  # travel to s by design


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_shared_server_sequential_turns() -> None:
    problem = owners_problem(replicas="shared", owners="sequential", batch_sizes=(8, 6))
    result = _check(problem, owners_plan(b=4), CONFIG)
    assert result.mode == "sequential"
    it = result.iterations[-1]
    assert it.measured_s == pytest.approx(sum(it.owner_measured_s))


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_one_owner_is_exactly_the_single_source_runtime() -> None:
    problem = owners_problem(one_owner=True, batch_sizes=(10, 6), schedule="1f1b")
    plan = owner_plan("o0", 4)
    mine = train_owners(problem, OwnersPlan((plan,)), CONFIG)
    today = train(problem, plan, CONFIG)
    assert mine.state is not None and today.state is not None
    assert set(mine.state[0]) == set(today.state)
    for key, value in today.state.items():
        assert torch.equal(mine.state[0][key], value), key
    assert [r.losses[0] for r in mine.iterations] == today.losses
    assert mine.simulated_s == pytest.approx(today.simulated_s, rel=1e-12)
