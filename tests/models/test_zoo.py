"""The zoo: published FLOP and parameter figures, unit structure, chains, synthetic batches.

FLOP figures are counted on the meta device (no memory, no arithmetic), with the profiler's
counter (:func:`pipesl.profiling.flop_counter`). Convention throughout: FLOPs = 2 x MACs
(one multiply-accumulate = 2 FLOPs); only convolutions, matmuls and attention are counted,
which is how the published MAC figures below are counted too.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipesl.exceptions import ProblemError
from pipesl.models import (
    as_chain,
    chain_units,
    example_batch,
    get_model,
    list_models,
    loss_fn,
    model_spec,
)
from pipesl.profiling import flop_counter


def meta_forward_flops(name: str, **kwargs: object) -> float:
    """Forward FLOPs of one default-shaped sample, counted on the meta device."""
    with torch.device("meta"):
        model = get_model(name, **kwargs)
    x, _ = example_batch(name, 1)
    with flop_counter() as counter:
        model(x.to("meta"))
    return float(counter.get_total_flops())


def meta_parameters(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in get_model(name).parameters())


# Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Table 1: forward FLOPs per
# token = 2 N + 2 n_layer n_ctx d_attn + 2 d_model n_vocab (de-embedding), with
# N = 12 n_layer d_model^2 the non-embedding parameters. GPT-2 small: n_layer 12, d 768,
# vocab 50257; n_ctx = the zoo's 128-token sample. (Table 1 lists the attention-score product
# once; pipesl also counts attention x values, +0.9 % here.)
_GPT2_TOKEN_FLOPS = 2 * 12 * 12 * 768**2 + 2 * 12 * 128 * 768 + 2 * 768 * 50257

PUBLISHED_MACS = {
    # torchvision model docs, ResNet50_Weights.IMAGENET1K_V1: "GFLOPS 4.09" (MACs);
    # He et al. 2016 give 3.8e9 for v1 (stride on the 1x1 conv); v1.5 strides the 3x3 conv.
    "resnet50-imagenet": 4.09e9,
    # torchvision model docs, VGG16_Weights.IMAGENET1K_V1: "GFLOPS 15.47" (MACs).
    "vgg16-imagenet": 15.47e9,
    # Sandler et al. 2018, MobileNetV2, Table 4: 300 M multiply-adds at 224x224, width 1.0.
    "mobilenetv2-imagenet": 300e6,
    # torchvision model docs, ViT_B_16_Weights.IMAGENET1K_V1: "GFLOPS 17.56"; Touvron et al.
    # 2021 (DeiT-B = ViT-B/16 at 224), Table 1: 17.6 "FLOPs" -- both are MACs (fvcore), and
    # include the attention products QK^T and AV (2 x 197^2 x 768 per block).
    "vit-b16-imagenet": 17.56e9,
    # The Kaplan formula above, per 128-token sequence, as MACs.
    "gpt2-small": 128 * _GPT2_TOKEN_FLOPS / 2,
    # torchvision model docs, ResNet18_Weights.IMAGENET1K_V1: "GFLOPS 1.81".
    "resnet18-imagenet": 1.81e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_forward_flops_match_published_figures(name: str) -> None:
    flops = meta_forward_flops(name)
    assert flops == pytest.approx(2 * PUBLISHED_MACS[name], rel=0.02)


def test_gpt2_is_about_two_flops_per_parameter_per_token() -> None:
    # The rule of thumb "forward ~ 2 x parameters per token" (124.4 M parameters, tied).
    per_token = meta_forward_flops("gpt2-small") / 128
    assert per_token == pytest.approx(2 * 124.44e6, rel=0.02)


PARAMETERS = {
    # torchvision model docs (num_params) and Hugging Face gpt2 (124,439,808).
    "resnet18-imagenet": 11_689_512,
    "resnet50-imagenet": 25_557_032,
    "vgg11-imagenet": 132_863_336,
    "vgg16-imagenet": 138_357_544,
    "vgg19-imagenet": 143_667_240,
    "mobilenetv2-imagenet": 3_504_872,
    "vit-b16-imagenet": 86_567_656,
    "gpt2-small": 124_439_808,
    # chengyangfu/pytorch-vgg-cifar10 vgg16: 14,714,688 conv + 2 x 262,656 + 5,130.
    "vgg16-cifar": 15_245_130,
}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_counts_match_reference_implementations(name: str) -> None:
    assert meta_parameters(name) == PARAMETERS[name]


def test_unit_names_are_stable() -> None:
    with torch.device("meta"):
        resnet = get_model("resnet50-imagenet")
        vgg = get_model("vgg16-cifar")
        gpt = get_model("gpt2-small")
    assert [n for n, _ in resnet.named_children()] == (
        ["stem"] + [f"layer{s}_{i}" for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3), strict=True)
                    for i in range(n)] + ["head"])
    assert [n for n, _ in vgg.named_children()] == [
        "conv1_1", "conv1_2+pool1", "conv2_1", "conv2_2+pool2", "conv3_1", "conv3_2",
        "conv3_3+pool3", "conv4_1", "conv4_2", "conv4_3+pool4", "conv5_1", "conv5_2",
        "conv5_3+pool5", "fc1", "fc2", "fc3"]
    assert [n for n, _ in gpt.named_children()] == (
        ["embed"] + [f"block{i}" for i in range(1, 13)] + ["head"])


def test_gpt2_ties_the_embedding_and_the_lm_head() -> None:
    with torch.device("meta"):
        gpt = get_model("gpt2-small")
        untied = get_model("gpt2-small", tie_weights=False)
    assert gpt.head.lm_head.weight is gpt.embed.wte.weight
    assert untied.head.lm_head.weight is not untied.embed.wte.weight


# Small but structurally identical configurations, so every entry runs on real tensors fast.
SMALL = {
    "gpt2-small": ({"depth": 2, "dim": 64, "heads": 4, "vocab_size": 97}, (12,)),
    "vit-b16-imagenet": ({"image_size": 32, "depth": 2, "dim": 64, "heads": 4}, (3, 32, 32)),
}
_HEAVY = {"vgg11-imagenet", "vgg16-imagenet", "vgg19-imagenet"}  # 100 M-parameter fc1


@pytest.mark.parametrize("name", [
    pytest.param(s.name, marks=pytest.mark.slow) if s.name in _HEAVY else s.name
    for s in list_models()])
def test_chain_of_units_computes_the_model(name: str) -> None:
    kwargs, shape = SMALL.get(name, ({}, None))
    spec = model_spec(name)
    if shape is None:
        shape = (3, 32, 32) if spec.input_shape[0] == 3 else spec.input_shape
    torch.manual_seed(0)
    model = get_model(name, **kwargs).eval()
    x, _ = example_batch(name, 2, input_shape=shape, num_classes=kwargs.get(spec.classes_arg))
    with torch.no_grad():
        expected = model(x)
        for granularity in ("block", "layer"):
            h = x
            for _, unit in chain_units(model, granularity):
                h = unit(h)
            assert torch.equal(h, expected), granularity
            assert torch.equal(as_chain(model, granularity)(x), expected)
    assert expected.shape[0] == 2


def test_layer_granularity_opens_sequentials_but_keeps_residual_blocks() -> None:
    with torch.device("meta"):
        resnet = get_model("resnet18-cifar")
        mobilenet = get_model("mobilenetv2-imagenet")
    names = [n for n, _ in chain_units(resnet, "layer")]
    assert names[:3] == ["stem.conv", "stem.bn", "stem.relu"]
    assert "layer2_0" in names and "layer2_0.conv1" not in names
    assert names[-3:] == ["head.avgpool", "head.flatten", "head.fc"]
    mnames = [n for n, _ in chain_units(mobilenet, "layer")]
    # block1 has no residual (32 -> 16 channels): a plain chain, opened; block3 has one.
    assert mnames[3:8] == ["block1.dw.conv", "block1.dw.bn", "block1.dw.relu",
                           "block1.project.conv", "block1.project.bn"]
    assert "block3" in mnames
    assert as_chain(resnet, "block") is resnet
    assert len(as_chain(resnet, "layer")) == len(names)


def test_granularity_and_model_are_validated() -> None:
    with pytest.raises(ProblemError, match="granularity"):
        chain_units(get_model("mlp-digits"), "blocks")
    with pytest.raises(ProblemError, match=r"must be an nn\.Sequential"):
        chain_units(nn.Linear(2, 2), "block")  # type: ignore[arg-type]
    with pytest.raises(ProblemError, match="empty"):
        chain_units(nn.Sequential(), "block")


def test_example_batches() -> None:
    x, y = example_batch("cnn-digits", 5)
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (5,) and int(y.max()) < 10
    x2, _ = example_batch("cnn-digits", 5)
    assert torch.equal(x, x2)  # seeded
    tokens, targets = example_batch("gpt2-small", 3, input_shape=(16,))
    assert tokens.shape == targets.shape == (3, 16) and tokens.dtype == torch.int64
    assert torch.equal(tokens[:, 1:], targets[:, :-1])  # next-token targets
    with pytest.raises(ProblemError, match=r"\(seq,\)"):
        example_batch("gpt2-small", 1, input_shape=(3, 4))


def test_losses_train_the_outputs() -> None:
    logits = torch.randn(2, 5, 11, requires_grad=True)
    loss = loss_fn("lm")(logits, torch.randint(11, (2, 5)))
    loss.backward()
    assert loss.ndim == 0 and logits.grad is not None
    assert loss_fn("classification")(torch.randn(4, 3), torch.tensor([0, 1, 2, 0])).ndim == 0


def test_unknown_name_lists_the_zoo() -> None:
    with pytest.raises(ProblemError, match=r"'resnet51' is not a zoo model.*resnet50-imagenet"):
        get_model("resnet51")
    assert model_spec("resnet50") is model_spec("resnet50-imagenet")
    assert model_spec("gpt2").input_shape == (128,)
