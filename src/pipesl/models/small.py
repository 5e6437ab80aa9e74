"""Tiny models for tests and quick runs on scikit-learn's 8x8 digits (64 features, 10 classes).

``mlp`` takes the 64 pixel values as a vector; ``cnn`` takes them as a 1x8x8 image. Both train
in seconds on one CPU core, which is what the runtime's end-to-end tests need.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["cnn", "mlp"]


def _dense(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("fc", nn.Linear(cin, cout)), ("relu", nn.ReLU())]))


def mlp(*, in_features: int = 64, hidden: int = 128, num_classes: int = 10) -> nn.Sequential:
    """A 4-unit MLP: ``fc1, fc2, fc3`` (Linear + ReLU) and ``head`` (Linear).

    Parameters
    ----------
    in_features : int
        Input width (64 for 8x8 digits).
    hidden : int
        Width of ``fc1``; ``fc2`` has ``hidden // 2`` units and ``fc3`` ``hidden // 4``.
    num_classes : int
        Output classes.

    Returns
    -------
    torch.nn.Sequential
    """
    widths = (in_features, hidden, hidden // 2, hidden // 4)
    units: list[tuple[str, nn.Module]] = [
        (f"fc{i}", _dense(widths[i - 1], widths[i])) for i in range(1, len(widths))]
    units.append(("head", nn.Linear(widths[-1], num_classes)))
    return nn.Sequential(OrderedDict(units))


def cnn(*, channels: int = 16, num_classes: int = 10) -> nn.Sequential:
    """A 5-unit CNN for 1x8x8 inputs: ``conv1, conv2, pool, fc1, head``.

    Parameters
    ----------
    channels : int
        Output channels of ``conv1`` (``conv2`` has twice as many).
    num_classes : int
        Output classes.

    Returns
    -------
    torch.nn.Sequential
    """
    c1, c2 = channels, 2 * channels

    def conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(OrderedDict([("conv", nn.Conv2d(cin, cout, 3, padding=1)),
                                          ("relu", nn.ReLU())]))

    return nn.Sequential(OrderedDict([
        ("conv1", conv(1, c1)),
        ("conv2", conv(c1, c2)),
        ("pool", nn.MaxPool2d(2)),
        ("fc1", nn.Sequential(OrderedDict([("flatten", nn.Flatten()),
                                           *_dense(c2 * 4 * 4, 64).named_children()]))),
        ("head", nn.Linear(64, num_classes)),
    ]))
