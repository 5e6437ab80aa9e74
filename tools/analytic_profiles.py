"""Regenerate pipesl's built-in model profiles from the architectures' formulas (no torch).

Usage::

    python tools/analytic_profiles.py            # rewrite src/pipesl/problem/data/models/
    python tools/analytic_profiles.py --out DIR  # write the same files elsewhere

The output is deterministic (integers only, fixed key order), so a test regenerates it and
compares bytes. The script also prints each model's totals and checks them against published
figures (it exits with status 1 if a check fails).

Models
------
``vgg16-cifar``
    VGG-16, configuration D of Simonyan & Zisserman (2015): 13 conv3x3 (padding 1, with bias)
    + ReLU, 5 max-pools 2x2/2, no batch norm, on 3x32x32 CIFAR-10 inputs. The classifier is the
    common CIFAR variant of chengyangfu/pytorch-vgg-cifar10 (``vgg.py``, ``vgg16()``):
    Dropout, Linear(512, 512), ReLU, Dropout, Linear(512, 512), ReLU, Linear(512, 10).
    Units (16, one per weighted layer): ``convB_i`` = conv + ReLU; a max-pool is merged into
    the conv unit before it (``convB_i+pool``), so every pool output is a unit boundary;
    ``fc1``/``fc2`` = Dropout + Linear + ReLU; ``fc3`` = Linear.
``resnet50-imagenet``
    ResNet-50 (He et al. 2016) on 3x224x224 ImageNet inputs, 1000 classes, with torchvision's
    stride placement ("ResNet v1.5": the stride of a downsampling bottleneck is on its 3x3
    conv, and on the 1x1 projection). Convolutions have no bias; every BN has 2 trainable
    parameters per channel (running statistics are buffers, not counted). Units (18): ``stem``
    = conv7x7/2 + BN + ReLU + maxpool3x3/2; ``layerS.i`` = one bottleneck block (conv1x1, BN,
    ReLU, conv3x3, BN, ReLU, conv1x1, BN, the projection conv1x1 + BN where present, the
    residual add and the final ReLU); ``head`` = global average pool + Linear(2048, 1000).

Conventions (every number is per sample)
----------------------------------------
* ``fwd_flops`` = 2 x MACs of the conv and linear layers (one multiply-add = 2 FLOPs). Bias
  adds, BN, ReLU, pooling, dropout and residual adds are *not* counted (under 1 % here).
* ``bwd_flops`` = 2 x ``fwd_flops`` (gradient w.r.t. the input and w.r.t. the weights).
* ``out_bytes`` = numel of the unit's output x 4 (float32); its gradient has the same size.
* ``param_bytes`` = number of trainable parameters x 4 (float32).
* ``act_bytes`` = bytes the unit keeps for its backward pass, as PyTorch autograd saves them:
  the unit's input (always charged: it is what a stage receives and holds until its
  backward; conv/linear save it), plus every tensor created inside the unit and saved for
  backward: the input of each BN, the output of each (in-place) ReLU that is not the unit's
  output (counted once though the next conv/pool saves the same buffer), each max-pool's
  int64 indices (8 bytes per output element), each dropout's output (float32, saved by the
  next linear) and its mask (1 byte per element). The unit's output is charged to the next
  unit, so over a whole model every saved tensor is counted once. The loss, per-channel BN
  statistics and weights are not counted here (weights are ``param_bytes``).
* ``input_bytes`` = 3 x H x W x 4 (a float32 image).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FLOAT32 = 4
INT64 = 8
BOOL = 1

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO / "src" / "pipesl" / "problem" / "data" / "models"

Shape = tuple[int, ...]


def numel(shape: Shape) -> int:
    """Number of elements of a tensor of ``shape`` (one sample)."""
    return math.prod(shape)


def conv_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output height/width of a convolution or pooling window."""
    return (size + 2 * pad - kernel) // stride + 1


@dataclass(frozen=True)
class UnitProfile:
    """One unit's totals, per sample."""

    name: str
    macs: int
    params: int
    out_shape: Shape
    act_bytes: int
    conv_macs: int
    conv_params: int

    def as_layer(self) -> dict[str, Any]:
        """The SPEC ``model.layers[]`` entry (integers, fixed key order)."""
        fwd = 2 * self.macs
        return {
            "name": self.name,
            "fwd_flops": fwd,
            "bwd_flops": 2 * fwd,
            "out_bytes": FLOAT32 * numel(self.out_shape),
            "param_bytes": FLOAT32 * self.params,
            "act_bytes": self.act_bytes,
        }


class Unit:
    """Accumulates one unit: its MACs, parameters, and the bytes it keeps for backward.

    Every method takes the shape of its input tensor and returns the output shape; ``keep``
    records a tensor saved for backward. The unit's input is charged on creation.
    """

    def __init__(self, name: str, in_shape: Shape):
        self.name = name
        self.macs = 0
        self.params = 0
        self.conv_macs = 0
        self.conv_params = 0
        self.act_bytes = FLOAT32 * numel(in_shape)

    def keep(self, shape: Shape, itemsize: int = FLOAT32) -> None:
        """Charge a tensor saved for backward."""
        self.act_bytes += itemsize * numel(shape)

    def conv(self, x: Shape, out_channels: int, kernel: int, stride: int = 1, pad: int = 0,
             bias: bool = False) -> Shape:
        """A dense 2-D convolution (groups = 1)."""
        cin, h, w = x
        y = (out_channels, conv_size(h, kernel, stride, pad), conv_size(w, kernel, stride, pad))
        macs = numel(y) * cin * kernel * kernel
        params = out_channels * cin * kernel * kernel + (out_channels if bias else 0)
        self.macs += macs
        self.params += params
        self.conv_macs += macs
        self.conv_params += params
        return y

    def linear(self, x: Shape, out_features: int, bias: bool = True) -> Shape:
        """A fully connected layer."""
        (fin,) = x
        self.macs += fin * out_features
        self.params += fin * out_features + (out_features if bias else 0)
        return (out_features,)

    def batch_norm(self, x: Shape) -> Shape:
        """BN: 2 trainable parameters per channel; saves its input."""
        self.params += 2 * x[0]
        self.keep(x)
        return x

    def max_pool(self, x: Shape, kernel: int, stride: int, pad: int = 0) -> Shape:
        """Max-pool: saves its input (charged by the caller) and int64 indices."""
        c, h, w = x
        y = (c, conv_size(h, kernel, stride, pad), conv_size(w, kernel, stride, pad))
        self.keep(y, INT64)
        return y

    def dropout(self, x: Shape) -> Shape:
        """Dropout in training: saves a bool mask; its output is saved by the next layer."""
        self.keep(x, BOOL)
        self.keep(x)
        return x

    def done(self, out_shape: Shape) -> UnitProfile:
        """Freeze the totals."""
        return UnitProfile(self.name, self.macs, self.params, out_shape, self.act_bytes,
                           self.conv_macs, self.conv_params)


# ---------------------------------------------------------------- VGG-16

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                    512, 512, 512, "M", 512, 512, 512, "M")
"""Configuration D: output channels of each conv3x3, "M" for a 2x2/2 max-pool."""


def vgg16_features(image: int) -> tuple[list[UnitProfile], Shape]:
    """The 13 conv units of VGG-16 on a 3 x image x image input, pools merged."""
    units: list[UnitProfile] = []
    x: Shape = (3, image, image)
    block, index = 1, 0
    cfg = list(VGG16_CFG)
    for i, v in enumerate(cfg):
        if v == "M":
            continue
        assert isinstance(v, int)
        index += 1
        pooled = i + 1 < len(cfg) and cfg[i + 1] == "M"
        name = f"conv{block}_{index}" + (f"+pool{block}" if pooled else "")
        u = Unit(name, x)
        y = u.conv(x, v, 3, 1, 1, bias=True)
        if pooled:
            u.keep(y)  # ReLU output (in place): saved by the ReLU and by the max-pool
            y = u.max_pool(y, 2, 2)
            block, index = block + 1, 0
        # else the ReLU output is the unit's output, charged to the next unit
        units.append(u.done(y))
        x = y
    return units, x


def vgg16_cifar() -> list[UnitProfile]:
    """VGG-16 on CIFAR-10 with the 512-512-512-10 classifier (chengyangfu/pytorch-vgg-cifar10)."""
    units, x = vgg16_features(32)
    flat: Shape = (numel(x),)
    for k, width in ((1, 512), (2, 512)):
        u = Unit(f"fc{k}", flat)
        h = u.dropout(flat)
        flat = u.linear(h, width)  # + ReLU (in place): its output is the unit's output
        units.append(u.done(flat))
    u = Unit("fc3", flat)
    units.append(u.done(u.linear(flat, 10)))
    return units


def vgg16_imagenet() -> list[UnitProfile]:
    """VGG-16 on 3x224x224 with the original 4096-4096-1000 classifier (sanity check only)."""
    units, x = vgg16_features(224)
    flat: Shape = (numel(x),)
    for k, width in ((1, 4096), (2, 4096), (3, 1000)):
        u = Unit(f"fc{k}", flat)
        flat = u.linear(flat, width)
        units.append(u.done(flat))
    return units


# ---------------------------------------------------------------- ResNet-50

RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
"""(width, blocks, stride of the first block) of layer1..layer4; expansion 4."""


def bottleneck(name: str, x: Shape, width: int, stride: int) -> UnitProfile:
    """One torchvision Bottleneck (stride on the 3x3 conv; projection when shapes change)."""
    u = Unit(name, x)  # the input: saved by conv1 (and by the projection conv)
    h = u.batch_norm(u.conv(x, width, 1))
    u.keep(h)  # ReLU output (in place), saved by the ReLU and conv2
    h = u.batch_norm(u.conv(h, width, 3, stride, 1))
    u.keep(h)  # ReLU output (in place), saved by the ReLU and conv3
    y = u.batch_norm(u.conv(h, 4 * width, 1))
    if stride != 1 or x[0] != 4 * width:
        u.batch_norm(u.conv(x, 4 * width, 1, stride))
    # residual add saves nothing; the final ReLU's output is the unit's output
    return u.done(y)


def resnet50_imagenet() -> list[UnitProfile]:
    """ResNet-50 (v1.5) on 3x224x224, 1000 classes: stem, 16 bottlenecks, head."""
    x: Shape = (3, 224, 224)
    u = Unit("stem", x)
    h = u.batch_norm(u.conv(x, 64, 7, 2, 3))
    u.keep(h)  # ReLU output (in place), saved by the ReLU and the max-pool
    x = u.max_pool(h, 3, 2, 1)
    units = [u.done(x)]
    for s, (width, blocks, stride) in enumerate(RESNET50_STAGES, start=1):
        for i in range(blocks):
            unit = bottleneck(f"layer{s}.{i}", x, width, stride if i == 0 else 1)
            units.append(unit)
            x = unit.out_shape
    u = Unit("head", x)
    pooled: Shape = (x[0],)
    u.keep(pooled)  # the average pool's output, saved by the linear layer
    units.append(u.done(u.linear(pooled, 1000)))
    return units


# ---------------------------------------------------------------- output

CONVENTIONS = (
    "Conventions (per sample): fwd_flops = 2 x MACs of conv/linear layers (bias adds, BN, ReLU,"
    " pooling, dropout, residual adds not counted); bwd_flops = 2 x fwd_flops; out_bytes ="
    " output numel x 4 (float32); param_bytes = trainable parameters x 4 (BN: 2 per channel);"
    " act_bytes = the input of the unit + tensors created inside it that autograd saves for"
    " backward (BN inputs, in-place ReLU outputs other than the unit output, int64 max-pool"
    " indices, dropout outputs and bool masks), float32. Generated by"
    " tools/analytic_profiles.py; do not edit by hand."
)


@dataclass(frozen=True)
class Totals:
    """Whole-model totals, per sample."""

    macs: int
    params: int
    conv_macs: int
    conv_params: int
    act_bytes: int


def totals(units: Sequence[UnitProfile]) -> Totals:
    """Sum the units."""
    return Totals(sum(u.macs for u in units), sum(u.params for u in units),
                  sum(u.conv_macs for u in units), sum(u.conv_params for u in units),
                  sum(u.act_bytes for u in units))


def describe(summary: str, t: Totals) -> str:
    """The model file's one-paragraph description, with the totals."""
    return (f"{summary} Totals per sample: {t.macs / 1e9:.4f} GMAC forward "
            f"({2 * t.macs / 1e9:.4f} GFLOP), {t.params:,} parameters ({t.conv_params:,} in "
            f"convolutions), {t.act_bytes / 2**20:.2f} MiB kept for backward. {CONVENTIONS}")


def model_document(name: str, summary: str, input_shape: Shape,
                   units: Sequence[UnitProfile]) -> dict[str, Any]:
    """The model file: a top-level ``description`` and the SPEC ``model`` section."""
    return {
        "description": describe(summary, totals(units)),
        "model": {
            "name": name,
            "input_bytes": FLOAT32 * numel(input_shape),
            "layers": [u.as_layer() for u in units],
        },
    }


def render(doc: dict[str, Any]) -> str:
    """YAML text of a model document, with a header comment."""
    header = ("# Generated by tools/analytic_profiles.py from the architecture's formulas;"
              " do not edit.\n# Regenerate: .venv/bin/python tools/analytic_profiles.py\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=False)


VGG_SUMMARY = (
    "VGG-16 (configuration D, no BN) on CIFAR-10 (3x32x32, 10 classes) with the classifier of"
    " chengyangfu/pytorch-vgg-cifar10 (Dropout, 512->512, ReLU, Dropout, 512->512, ReLU,"
    " 512->10). 16 units: 13 conv3x3+ReLU (each max-pool merged into the conv unit before it),"
    " fc1, fc2 (dropout+linear+ReLU), fc3."
)
RESNET_SUMMARY = (
    "ResNet-50 (torchvision layout, v1.5: stride on the 3x3 conv) on ImageNet (3x224x224,"
    " 1000 classes). 18 units: stem (conv7x7/2+BN+ReLU+maxpool3x3/2), 16 bottleneck blocks"
    " layer1.0..layer4.2 (each with its projection shortcut where present), head"
    " (avgpool+fc 2048->1000)."
)


def build() -> dict[str, tuple[dict[str, Any], list[UnitProfile]]]:
    """Every built-in profile: file stem -> (document, units)."""
    vgg = vgg16_cifar()
    resnet = resnet50_imagenet()
    return {
        "vgg16-cifar": (model_document("vgg16-cifar", VGG_SUMMARY, (3, 32, 32), vgg), vgg),
        "resnet50-imagenet": (model_document("resnet50-imagenet", RESNET_SUMMARY,
                                             (3, 224, 224), resnet), resnet),
    }


def sanity_checks() -> list[tuple[str, float, float, float]]:
    """(what, computed, published, relative tolerance) for each published figure."""
    vgg32 = totals(vgg16_cifar())
    vgg224 = totals(vgg16_imagenet())
    r50 = totals(resnet50_imagenet())
    return [
        ("VGG-16 224x224 total MACs (~15.5 G)", vgg224.macs, 15.5e9, 0.01),
        ("VGG-16 224x224 parameters (138.36 M)", vgg224.params, 138.357544e6, 0.001),
        ("VGG-16 32x32 conv MACs (~0.31 G)", vgg32.conv_macs, 0.31e9, 0.02),
        ("VGG-16 conv parameters (14.71 M)", vgg32.conv_params, 14.714688e6, 0.001),
        ("ResNet-50 MACs (torchvision 4.09 G)", r50.macs, 4.09e9, 0.02),
        ("ResNet-50 parameters (25.557 M)", r50.params, 25.557032e6, 0.001),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the profiles, print their totals and the sanity checks; 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR,
                        help=f"output folder (default: {MODELS_DIR.relative_to(REPO)})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, (doc, units) in build().items():
        path = args.out / f"{stem}.yaml"
        path.write_text(render(doc), encoding="utf-8")
        t = totals(units)
        print(f"{stem}: {len(units)} units, {t.macs:,} MACs = {2 * t.macs / 1e9:.4f} GFLOP "
              f"forward, {t.params:,} parameters ({t.conv_params:,} conv), conv MACs "
              f"{t.conv_macs:,}, act {t.act_bytes:,} B/sample -> {path}")
    failed = 0
    for what, got, want, tol in sanity_checks():
        rel = got / want - 1.0
        ok = abs(rel) <= tol
        failed += not ok
        print(f"  [{'ok' if ok else 'FAIL'}] {what}: {got:,.0f} vs {want:,.0f} "
              f"({100 * rel:+.2f} %, tolerance {100 * tol:g} %)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
