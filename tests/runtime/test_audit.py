"""The transport audit of a U-shaped run: with ``labels_at`` on the data owner, neither its raw
inputs nor its labels ever cross a link — only activations and gradients do.

mlp-digits, labels on src: src[1-2] -> (src, r, a) -> a[3-4] -> (a, r, src) -> the loss on
src; B = 9, b = 4 (micro-batches of 4, 4, 1); two iterations on digits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from runtime_cases import line_problem, ushaped_plan

from pipesl.runtime import build_config, make_job, train
from pipesl.runtime.audit import digest, tensors_path
from pipesl.runtime.data import make_batches

STEPS = 2


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_labels_and_raw_inputs_never_leave_the_data_owner(tmp_path: Path) -> None:
    problem = line_problem("mlp-digits", 9, labels_at="src")
    config = build_config(steps=STEPS, data="digits", time_scale=0.1,
                       audit=str(tmp_path / "audit.jsonl"))
    result = train(problem, ushaped_plan(4), config)
    report = result.audit
    assert report is not None
    print(report.summary())
    assert report.ok and report.violations == ()
    assert report.raw_input_crossings == () and report.label_crossings == ()
    # Per micro-batch, each of the 4 hops (src > r > a, then the logits a > r > src) carries
    # one activation forward and its gradient back: 2 iterations x M = 3 x 4 hops.
    assert report.by_kind.get("labels", 0) == 0
    assert report.by_kind["activation"] == report.by_kind["gradient"] == STEPS * 3 * 4
    assert report.sent == report.received == 2 * STEPS * 3 * 4
    assert set(report.hops) == {"src>r activation", "r>a activation", "a>r activation",
                                "r>src activation", "a>r gradient", "r>src gradient",
                                "src>r gradient", "r>a gradient"}
    # What the rule does not cover, stated in docs/security.md: the gradient of the logits
    # that the label node sends back (softmax - one-hot) gives every label away to the nodes
    # on its way back (a > r > src... here r and a), in every micro-batch.
    assert len(report.label_revealing) == STEPS * 3 * 2
    # Independently of the checker: compare every crossing tensor with the owner's data.
    audit = config.outputs.audit or ""
    records = [json.loads(line) for line in Path(audit).read_text().splitlines()]
    tensors = torch.load(tensors_path(audit), weights_only=True)
    batches = make_batches(make_job(problem, ushaped_plan(4), config).data)
    crossing = [r for r in records if r["kind"] in ("activation", "gradient", "labels")]
    assert len(crossing) == 2 * report.sent  # recorded by the sender and the receiver
    for r in crossing:
        x, y = batches.batch(r["iteration"])
        t = tensors[r["id"]]
        assert r["kind"] != "labels" and t.is_floating_point()
        forbidden = [x, *x.split(4), *x.unbind(0), y, *y.split(4)]
        assert r["sha256"] not in {digest(p) for p in forbidden}
        for p in forbidden:
            assert not (p.numel() == t.numel() and torch.equal(p.reshape(-1).to(t.dtype),
                                                               t.reshape(-1)))
        assert r["layer"] in (2, 4)  # src's output (layer 2) or the logits (layer 4)
