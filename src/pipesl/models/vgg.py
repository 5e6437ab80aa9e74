"""VGG-11/16/19 (Simonyan & Zisserman, 2015) as a chain of units.

Units: one per convolution, ``conv<stage>_<i>`` = conv [+ BN] + ReLU; the max-pool that ends a
stage is merged into the convolution unit before it (``conv1_2+pool1``), since a cut is always
better after a pool than before it; then ``fc1``, ``fc2``, ``fc3``. These are the unit names and
boundaries of ``tools/analytic_profiles.py``.

* ImageNet head (torchvision ``vgg16``): adaptive average pool to 7x7, ``fc1``/``fc2`` =
  Linear + ReLU + Dropout(0.5), ``fc3`` = Linear 4096 -> classes.
* CIFAR head (chengyangfu/pytorch-vgg-cifar10 ``vgg16()``, for 32x32 inputs): ``fc1``/``fc2`` =
  Dropout(0.5) + Linear 512 -> 512 + ReLU, ``fc3`` = Linear 512 -> classes.

Neither uses BN by default (torchvision ``vgg16``, 138.4 M parameters; chengyangfu ``vgg16``).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["VGG_CONFIGS", "vgg"]

VGG_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}
"""Output channels of each convolution, grouped by stage (a max-pool ends every stage)."""


def _conv_unit(cin: int, cout: int, batch_norm: bool, pool: bool) -> nn.Sequential:
    parts: list[tuple[str, nn.Module]] = [("conv", nn.Conv2d(cin, cout, 3, padding=1))]
    if batch_norm:
        parts.append(("bn", nn.BatchNorm2d(cout)))
    parts.append(("relu", nn.ReLU()))
    if pool:
        parts.append(("pool", nn.MaxPool2d(2, 2)))
    return nn.Sequential(OrderedDict(parts))


def _fc_unit(cin: int, cout: int, dropout: float, *, dropout_first: bool,
             prefix: tuple[tuple[str, nn.Module], ...] = ()) -> nn.Sequential:
    drop = [("drop", nn.Dropout(dropout))] if dropout > 0 else []
    core = [("fc", nn.Linear(cin, cout)), ("relu", nn.ReLU())]
    parts = [*prefix, *(drop + core if dropout_first else core + drop)]
    return nn.Sequential(OrderedDict(parts))


def vgg(depth: str = "vgg16", *, cifar: bool = False, num_classes: int | None = None,
        batch_norm: bool = False, dropout: float = 0.5) -> nn.Sequential:
    """Build a VGG as an ``nn.Sequential`` of named units.

    Parameters
    ----------
    depth : {"vgg11", "vgg16", "vgg19"}
        The configuration (A, D or E of the paper).
    cifar : bool
        CIFAR head for 32x32 inputs (512-512-512-classes) instead of the ImageNet head.
    num_classes : int, optional
        Default 10 (CIFAR) or 1000 (ImageNet).
    batch_norm : bool
        BN after each convolution.
    dropout : float
        Dropout of ``fc1`` and ``fc2``.

    Returns
    -------
    torch.nn.Sequential
        Units ``conv1_1, ..., conv5_3+pool5, fc1, fc2, fc3`` (for VGG-16).
    """
    if depth not in VGG_CONFIGS:
        raise ValueError(f"unknown VGG depth {depth!r}; expected one of {sorted(VGG_CONFIGS)}")
    classes = num_classes or (10 if cifar else 1000)
    units: list[tuple[str, nn.Module]] = []
    cin = 3
    for stage, widths in enumerate(VGG_CONFIGS[depth], start=1):
        for i, cout in enumerate(widths, start=1):
            last = i == len(widths)
            name = f"conv{stage}_{i}" + (f"+pool{stage}" if last else "")
            units.append((name, _conv_unit(cin, cout, batch_norm, pool=last)))
            cin = cout
    if cifar:
        flatten = (("flatten", nn.Flatten()),)
        units += [("fc1", _fc_unit(512, 512, dropout, dropout_first=True, prefix=flatten)),
                  ("fc2", _fc_unit(512, 512, dropout, dropout_first=True)),
                  ("fc3", nn.Linear(512, classes))]
    else:
        pool = (("avgpool", nn.AdaptiveAvgPool2d((7, 7))), ("flatten", nn.Flatten()))
        units += [("fc1", _fc_unit(512 * 7 * 7, 4096, dropout, dropout_first=False,
                                   prefix=pool)),
                  ("fc2", _fc_unit(4096, 4096, dropout, dropout_first=False)),
                  ("fc3", nn.Linear(4096, classes))]
    return nn.Sequential(OrderedDict(units))
