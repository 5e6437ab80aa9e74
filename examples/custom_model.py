"""Your own PyTorch model, profiled by pipesl (run from the repository root)::

    pipesl profile examples.custom_model:make --json > my-model.json
    pipesl profile examples/custom_model.py:make_blocks --out my-model.yaml

``make`` returns an ``nn.Sequential`` (its children are the units a plan may cut between);
``make_blocks`` returns a module that lists its units in a ``blocks`` attribute instead. The
``input_shape`` attribute gives the per-sample input shape, so ``--input-shape`` may be omitted.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def make() -> nn.Sequential:
    """A small CNN for 3x32x32 images, as named units."""

    def conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                             nn.ReLU(), nn.MaxPool2d(2))

    model = nn.Sequential(OrderedDict([
        ("conv1", conv(3, 16)),   # -> 16x16x16
        ("conv2", conv(16, 32)),  # -> 32x8x8
        ("conv3", conv(32, 64)),  # -> 64x4x4
        ("head", nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 10))),
    ]))
    model.input_shape = (3, 32, 32)
    return model


class BlockNet(nn.Module):
    """A residual MLP whose ``forward`` is exactly its ``blocks`` run in order."""

    input_shape = (32,)

    class Residual(nn.Module):
        """``x + fc(relu(x))``: one unit, since a cut cannot split a residual connection."""

        def __init__(self, width: int) -> None:
            super().__init__()
            self.fc = nn.Linear(width, width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Residual step."""
            return x + self.fc(torch.relu(x))

    def __init__(self, width: int = 32, depth: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([self.Residual(width) for _ in range(depth)])
        self.blocks.append(nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks in order."""
        for block in self.blocks:
            x = block(x)
        return x


def make_blocks() -> BlockNet:
    """A module with a ``blocks`` list; pipesl profiles it as the chain of its blocks."""
    return BlockNet()
