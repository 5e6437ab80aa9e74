"""ResNet-18/50 (He et al., 2016) as a chain of residual blocks.

Units: ``stem``, one unit per residual block ``layer<s>_<i>`` (stage s = 1..4, block i from 0,
as torchvision's ``layer<s>.<i>``; PyTorch forbids dots in child names), then ``head``
(global average pool, flatten, fully connected). A block and its shortcut are one unit.

* ImageNet stem: 7x7/2 convolution, BN, ReLU, 3x3/2 max-pool (torchvision ``resnet18/50``).
* CIFAR stem: 3x3/1 convolution, BN, ReLU, no pool (the usual CIFAR-10 ResNet for 32x32).

The bottleneck puts the stride on its 3x3 convolution ("ResNet v1.5", as torchvision does;
the paper puts it on the first 1x1). ResNet-50 at 224x224 is then 4.09 GMAC forward.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "resnet"]


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout)]


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity or 1x1 projection shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 3, stride)
        self.conv2, self.bn2 = _conv_bn(width, cout, 3)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block: ``relu(f(x) + shortcut(x))``."""
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, v1.5), 1x1 expand x4, with a shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, cout, 1)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block: ``relu(f(x) + shortcut(x))``."""
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.downsample(x))


_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


def resnet(depth: int = 50, *, cifar: bool = False,
           num_classes: int | None = None) -> nn.Sequential:
    """Build a ResNet as an ``nn.Sequential`` of named units.

    Parameters
    ----------
    depth : {18, 34, 50}
        Number of weighted layers.
    cifar : bool
        CIFAR stem (3x3/1 convolution, no max-pool) instead of the ImageNet stem.
    num_classes : int, optional
        Default 10 (CIFAR) or 1000 (ImageNet).

    Returns
    -------
    torch.nn.Sequential
        Units ``stem, layer1_0, ..., layer4_<n-1>, head``.
    """
    if depth not in _DEPTHS:
        raise ValueError(f"unknown ResNet depth {depth}; expected one of {sorted(_DEPTHS)}")
    block, counts = _DEPTHS[depth]
    classes = num_classes or (10 if cifar else 1000)
    if cifar:
        stem = OrderedDict([("conv", nn.Conv2d(3, 64, 3, 1, 1, bias=False)),
                            ("bn", nn.BatchNorm2d(64)), ("relu", nn.ReLU())])
    else:
        stem = OrderedDict([("conv", nn.Conv2d(3, 64, 7, 2, 3, bias=False)),
                            ("bn", nn.BatchNorm2d(64)), ("relu", nn.ReLU()),
                            ("maxpool", nn.MaxPool2d(3, 2, 1))])
    units: list[tuple[str, nn.Module]] = [("stem", nn.Sequential(stem))]
    cin = 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True),
                                           start=1):
        for i in range(count):
            stride = 2 if stage > 1 and i == 0 else 1
            units.append((f"layer{stage}_{i}", block(cin, width, stride)))
            cin = width * block.expansion
    units.append(("head", nn.Sequential(OrderedDict([
        ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
        ("fc", nn.Linear(cin, classes))]))))
    model = nn.Sequential(OrderedDict(units))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model
