"""Pipelined split training across processes ends with the same parameters as single-process
training of the same model on the same data (float64, so the comparison can be tight).

Each case spawns one process per network node of its plan (3-4 processes) with emulation on
(at a tenth of the planned durations, to stay quick): GPipe and 1F1B, relays, a compute node
relaying another stage's traffic, U-shaped labels over a link shared with the stage route,
and mini-batches that b does not divide.
"""

from __future__ import annotations

import pytest
import torch
from runtime_cases import line_problem, three_stage_plan, ushaped_plan

from pipesl.runtime import build_config, train, train_reference

CONFIG = build_config(steps=3, dtype="float64", time_scale=0.1, lr=0.1, momentum=0.5,
                      return_state=True)


def _assert_same(state: dict[str, torch.Tensor] | None,
                 reference: dict[str, torch.Tensor]) -> None:
    assert state is not None
    assert set(state) == set(reference)
    for key, value in reference.items():
        assert torch.allclose(state[key], value, rtol=1e-10, atol=1e-12), key


@pytest.mark.distributed
@pytest.mark.timeout(240)
@pytest.mark.parametrize("emulate", [True, False])
def test_1f1b_three_stages_with_relays_matches_single_process(emulate: bool) -> None:
    # cnn-digits: src[1-2] -> a[3-4] -> (a, h, b) -> b[5]; B = 10, b = 4: sizes 4, 4, 2.
    # Without emulation the stages post their own receives when needed (1F1B, real
    # passes), the relays and the labels ahead (program.posted_ahead).
    problem = line_problem("cnn-digits", 10, schedule="1f1b")
    config = CONFIG.with_options(data="digits", emulate=emulate)
    result = train(problem, three_stage_plan(4), config)
    reference, losses = train_reference(problem, config)
    _assert_same(result.state, reference)
    assert result.losses == pytest.approx(losses, rel=1e-12)
    assert result.schedule == "1f1b" and len(result.iterations) == 3
    roles = {node: roles for node, _, roles in result.nodes}
    assert roles["h"] == ("relay",) and roles["a"] == ("stage 2 (L3-4)",)
    assert roles["b"] == ("stage 3 (L5-5)", "loss")


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_gpipe_ushaped_labels_with_a_user_dataset_matches_single_process() -> None:
    # mlp-digits, labels stay on src: src[1-2] -> (src, r, a) -> a[3-4] -> (a, r, src) -> loss
    # on src. B = 9, b = 4: sizes 4, 4, 1. The data comes from the Python API's Dataset hook.
    problem = line_problem("mlp-digits", 9, labels_at="src", schedule="gpipe")
    gen = torch.Generator().manual_seed(1)
    dataset = torch.utils.data.TensorDataset(torch.randn(40, 64, generator=gen,
                                                         dtype=torch.float64),
                                             torch.randint(10, (40,), generator=gen))
    result = train(problem, ushaped_plan(4), CONFIG, dataset=dataset)
    reference, losses = train_reference(problem, CONFIG, dataset=dataset)
    _assert_same(result.state, reference)
    assert result.losses == pytest.approx(losses, rel=1e-12)
    roles = {node: roles for node, _, roles in result.nodes}
    assert "loss (own labels)" in roles["src"] and roles["r"] == ("relay",)
