"""MobileNetV2 (Sandler et al., 2018) as a chain of inverted-residual blocks.

Units: ``stem`` (3x3/2 convolution, BN, ReLU6), ``block1`` ... ``block17`` (inverted residuals,
torchvision's ``features.1`` ... ``features.17``), ``conv_last`` (1x1 to 1280, BN, ReLU6) and
``head`` (global average pool, Dropout(0.2), Linear). A block with a residual connection is a
:class:`InvertedResidual` (one unit at every granularity); a block without one is a plain
``nn.Sequential`` (expand, depthwise, project) that ``granularity="layer"`` may split.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["INVERTED_RESIDUAL_SETTINGS", "InvertedResidual", "mobilenet_v2"]

INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    # expansion t, output channels c, repeats n, first stride s  (paper Table 2)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> nn.Sequential:
    parts: list[tuple[str, nn.Module]] = [
        ("conv", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)),
        ("bn", nn.BatchNorm2d(cout)),
    ]
    if act:
        parts.append(("relu", nn.ReLU6()))
    return nn.Sequential(OrderedDict(parts))


def _branch(cin: int, cout: int, stride: int, expand: int) -> OrderedDict[str, nn.Module]:
    hidden = cin * expand
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if expand != 1:
        parts["expand"] = _conv_bn_act(cin, hidden, 1)
    parts["dw"] = _conv_bn_act(hidden, hidden, 3, stride, groups=hidden)
    parts["project"] = _conv_bn_act(hidden, cout, 1, act=False)
    return parts


class InvertedResidual(nn.Module):
    """An inverted residual with its identity shortcut: ``x + project(dw(expand(x)))``."""

    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_branch(channels, channels, 1, expand))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block."""
        return x + self.conv(x)


def mobilenet_v2(*, num_classes: int = 1000, dropout: float = 0.2) -> nn.Sequential:
    """Build MobileNetV2 (width 1.0) as an ``nn.Sequential`` of named units.

    Parameters
    ----------
    num_classes : int
        Output classes of the classifier.
    dropout : float
        Dropout before the classifier (torchvision's 0.2).

    Returns
    -------
    torch.nn.Sequential
        Units ``stem, block1, ..., block17, conv_last, head`` (3.5 M parameters).
    """
    units: list[tuple[str, nn.Module]] = [("stem", _conv_bn_act(3, 32, 3, 2))]
    cin = 32
    index = 0
    for expand, cout, repeats, first_stride in INVERTED_RESIDUAL_SETTINGS:
        for i in range(repeats):
            index += 1
            stride = first_stride if i == 0 else 1
            if stride == 1 and cin == cout:
                unit: nn.Module = InvertedResidual(cin, expand)
            else:
                unit = nn.Sequential(_branch(cin, cout, stride, expand))
            units.append((f"block{index}", unit))
            cin = cout
    units.append(("conv_last", _conv_bn_act(cin, 1280, 1)))
    head: list[tuple[str, nn.Module]] = [("avgpool", nn.AdaptiveAvgPool2d(1)),
                                         ("flatten", nn.Flatten())]
    if dropout > 0:
        head.append(("drop", nn.Dropout(dropout)))
    head.append(("fc", nn.Linear(1280, num_classes)))
    units.append(("head", nn.Sequential(OrderedDict(head))))
    model = nn.Sequential(OrderedDict(units))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return model
