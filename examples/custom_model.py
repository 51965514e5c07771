"""A tiny network of your own, trained with FreezeOut through ``model=custom``:

    python run.py model=custom model._target_=examples.custom_model.SmallCNN +model.width=32 \
        data=fashion_mnist
    python -m freezeout.groups model=custom model._target_=examples.custom_model.SmallCNN data=fashion_mnist

Nothing in it knows about FreezeOut: the harness finds its layer groups in forward order (the
stem, each block, the head), or takes them from ``model.groups``. It receives ``num_classes``
and ``in_channels`` from the data because its signature names them.
"""
from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Conv-BN-ReLU twice, with a residual connection; ``stride=2`` halves the resolution."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


class SmallCNN(nn.Module):
    """Stem conv, ``depth`` residual blocks (every second one downsamples), pooling, classifier."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depth: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for i in range(depth):
            cout = width * 2 ** ((i + 1) // 2)
            blocks.append(Block(cin, cout, stride=2 if i % 2 else 1))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x))).flatten(1)
        return self.head(self.dropout(x))
