"""The profiler against hand counts: FLOPs (with attention), output, parameter, held bytes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count

from pipesl.exceptions import ProblemError
from pipesl.models import get_model
from pipesl.problem.parse import model_from_dict
from pipesl.profiling import flop_counter, profile, profile_document, profile_model

F32 = 4


def test_mlp_hand_counts() -> None:
    m = profile("mlp-digits")  # 64 -> 128 -> 64 -> 32 -> 10
    assert m.name == "mlp-digits" and m.input_bytes == 64 * F32
    fc1, fc2, fc3, head = m.layers
    assert (fc1.fwd_flops, fc2.fwd_flops, fc3.fwd_flops, head.fwd_flops) == (
        2 * 64 * 128, 2 * 128 * 64, 2 * 64 * 32, 2 * 32 * 10)
    # The first unit computes only its weight gradient; the others also the input gradient.
    assert fc1.bwd_flops == fc1.fwd_flops
    assert (fc2.bwd_flops, head.bwd_flops) == (2 * fc2.fwd_flops, 2 * head.fwd_flops)
    assert [x.out_bytes for x in m.layers] == [128 * F32, 64 * F32, 32 * F32, 10 * F32]
    assert fc1.param_bytes == (64 * 128 + 128) * F32
    assert head.param_bytes == (32 * 10 + 10) * F32
    # Each unit holds its input (the linear saves it); the ReLU output that the next linear
    # saves again is charged once, to the next unit.
    assert [x.act_bytes for x in m.layers] == [64 * F32, 128 * F32, 64 * F32, 32 * F32]


def test_cnn_pool_holds_its_input_and_int64_indices() -> None:
    m = profile("cnn-digits")  # conv1 1->16, conv2 16->32 (8x8), pool -> 4x4, fc1, head
    conv1, conv2, pool, fc1, _ = m.layers
    assert conv1.fwd_flops == 2 * 8 * 8 * 16 * 9
    assert conv2.fwd_flops == 2 * 8 * 8 * 32 * 16 * 9
    assert pool.fwd_flops == 0 and pool.out_bytes == 32 * 4 * 4 * F32
    assert conv2.act_bytes == 16 * 8 * 8 * F32  # its input
    assert pool.act_bytes == 32 * 8 * 8 * F32 + 32 * 4 * 4 * 8  # input + int64 indices
    assert fc1.act_bytes == 32 * 4 * 4 * F32  # its (flattened) input


def test_resnet_stem_hand_counts() -> None:
    m = profile("resnet18-cifar")  # stem: conv3x3 3->64 (no bias), BN, ReLU at 32x32
    stem = m.layers[0]
    assert stem.fwd_flops == 2 * 32 * 32 * 64 * 3 * 9
    assert stem.out_bytes == 64 * 32 * 32 * F32
    assert stem.param_bytes == (64 * 3 * 9 + 2 * 64) * F32
    # input image + the BN input (conv output) + BN's per-channel mean and inverse std.
    assert stem.act_bytes == 3 * 32 * 32 * F32 + 64 * 32 * 32 * F32 + 2 * 64 * F32
    layers = profile("resnet18-cifar", granularity="layer")
    assert len(layers.layers) > len(m.layers)
    assert sum(x.fwd_flops for x in layers.layers) == sum(x.fwd_flops for x in m.layers)
    assert [x.name for x in layers.layers[:3]] == ["stem.conv", "stem.bn", "stem.relu"]


def test_figures_are_per_sample() -> None:
    one = profile("mlp-digits", batch=1)
    four = profile("mlp-digits", batch=4)
    assert one == four


def test_dtype_scales_bytes_not_flops() -> None:
    f32 = profile("cnn-digits")
    bf16 = profile("cnn-digits", dtype="bfloat16")
    assert bf16.input_bytes == f32.input_bytes / 2
    for a, b in zip(f32.layers, bf16.layers, strict=True):
        assert (b.fwd_flops, b.out_bytes, b.param_bytes) == (
            a.fwd_flops, a.out_bytes / 2, a.param_bytes / 2)
    with pytest.raises(ProblemError, match="dtype"):
        profile("cnn-digits", dtype="float8")


def _linear_flops(seq: int, dim: int) -> int:
    # qkv (3 d^2) + proj (d^2) + mlp (2 x 4 d^2) multiply-adds per token, 2 FLOPs each.
    return 2 * seq * 12 * dim * dim


def _attention_flops(seq: int, dim: int) -> int:
    # QK^T and AV: 2 x seq^2 x dim multiply-adds (all heads), dense even when causal.
    return 2 * 2 * seq * seq * dim


@pytest.mark.parametrize("name", ["gpt2-small", "vit-b16-imagenet"])
def test_attention_flops_are_counted(name: str) -> None:
    # Small, structurally identical configurations: width 64, 4 heads.
    if name == "gpt2-small":
        kwargs = {"depth": 2, "dim": 64, "heads": 4, "vocab_size": 97}
        m = profile(name, input_shape=(16,), **kwargs)
        seq = 16
        assert m.layers[0].fwd_flops == 0  # an embedding lookup is no arithmetic
        assert m.layers[-1].fwd_flops == 2 * seq * 64 * 97  # lm_head
    else:
        kwargs = {"image_size": 32, "depth": 2, "dim": 64, "heads": 4}
        m = profile(name, input_shape=(3, 32, 32), **kwargs)
        seq = 1 + 2 * 2  # class token + 2x2 patches
    block = m.layers[1]
    assert block.name == "block1"
    assert block.fwd_flops == _linear_flops(seq, 64) + _attention_flops(seq, 64)
    attention_bwd = sdpa_backward_flop_count(*[(1, 4, seq, 16)] * 4)
    assert block.bwd_flops == 2 * _linear_flops(seq, 64) + attention_bwd


def test_plain_flop_counter_misses_cpu_attention() -> None:
    # Why the profiler adds a formula: torch 2.13 counts the CPU SDPA kernel as 0 FLOPs.
    q = torch.randn(1, 2, 8, 4)
    with FlopCounterMode(display=False) as plain:
        scaled_dot_product_attention(q, q, q)
    with flop_counter() as ours:
        scaled_dot_product_attention(q, q, q)
    assert plain.get_total_flops() == 0
    assert ours.get_total_flops() == 2 * 2 * 2 * 8 * 8 * 4


def test_grouped_convolution_backward_costs_twice_its_forward() -> None:
    model = nn.Sequential(nn.Conv2d(4, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    m = profile_model(model, torch.randn(4, 6, 6), name="dw")
    depthwise = m.layers[1]
    assert depthwise.fwd_flops == 2 * 6 * 6 * 8 * 9
    assert depthwise.bwd_flops == 2 * depthwise.fwd_flops  # torch 2.13 alone says 16 x


def test_shared_parameters_count_in_each_unit_that_holds_them() -> None:
    m = profile("gpt2-small", input_shape=(4,), depth=1, dim=32, heads=2, vocab_size=50)
    embed, _, head = m.layers
    assert embed.param_bytes == (50 * 32 + 1024 * 32) * F32  # wte + wpe
    assert head.param_bytes == (50 * 32 + 2 * 32) * F32  # tied lm_head + ln_f


def test_the_callers_model_is_left_as_it_was() -> None:
    model = get_model("mlp-digits").eval()
    profile_model(model, torch.zeros(64), name="mlp", dtype="float64")
    assert not model.training
    assert all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())


class _Pair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


def test_unit_errors_are_one_line_problem_errors() -> None:
    chain = nn.Sequential(OrderedDict([("lin", nn.Linear(2, 2)), ("pair", _Pair())]))
    with pytest.raises(ProblemError, match=r"unit 'pair': returned a tuple"):
        profile_model(chain, torch.zeros(2), name="x")
    with pytest.raises(ProblemError, match=r"unit 'fc1': failed on an input of shape \(1, 3\)"):
        profile("mlp-digits", input_shape=(3,))
    with pytest.raises(ProblemError, match="batch"):
        profile("mlp-digits", batch=0)


def test_profile_document_is_a_spec_model_section() -> None:
    m = profile("cnn-digits")
    doc = profile_document(m, description="d", source="s")
    assert list(doc) == ["name", "description", "source", "input_bytes", "layers"]
    assert all(isinstance(v, int) for layer in doc["layers"] for k, v in layer.items()
               if k != "name")
    assert model_from_dict(doc) == m
