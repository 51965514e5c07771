"""DenseNet-BC (Huang et al.): bottleneck layers and compression 0.5, three dense blocks.

Layer groups: the stem conv, every bottleneck layer, every transition, then the head.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import GroupedModel, classifier_head, init_weights
from .registry import register


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
    ]


class Bottleneck(nn.Module):
    """BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k), its output concatenated to its input."""

    def __init__(self, cin: int, growth_rate: int):
        super().__init__()
        self.body = nn.Sequential(
            *_bn_relu_conv(cin, 4 * growth_rate, 1), *_bn_relu_conv(4 * growth_rate, growth_rate, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def transition(cin: int, cout: int) -> nn.Sequential:
    """BN-ReLU-Conv1x1 to ``cout`` channels, then 2x2 average pooling (halves the resolution)."""
    return nn.Sequential(*_bn_relu_conv(cin, cout, 1), nn.AvgPool2d(2, ceil_mode=True))


class DenseNetBC(GroupedModel):
    """DenseNet-BC with depth ``L`` and growth rate ``k``: ``(L - 4) / 6`` bottlenecks a block."""

    def __init__(self, num_classes: int, in_channels: int = 3, depth: int = 76, growth_rate: int = 12,
                 compression: float = 0.5):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"model.depth={depth} does not fit DenseNet-BC: need (depth - 4) % 6 == 0 and "
                "depth >= 10 (e.g. 10, 16, 22, 40, 76, 100)"
            )
        if growth_rate < 1:
            raise ValueError(f"model.growth_rate={growth_rate}; need >= 1")
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"model.compression={compression}; allowed: (0, 1]")
        self.depth, self.growth_rate = depth, growth_rate
        per_block = (depth - 4) // 6
        channels = 2 * growth_rate
        groups: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(per_block):
                groups.append(Bottleneck(channels, growth_rate))
                channels += growth_rate
            if block < 2:
                out = int(channels * compression)
                groups.append(transition(channels, out))
                channels = out
        groups.append(classifier_head(channels, num_classes))
        self.groups = nn.ModuleList(groups)
        init_weights(self)


@register("densenet")
def densenet(num_classes: int, in_channels: int = 3, depth: int = 76, growth_rate: int = 12,
             compression: float = 0.5) -> DenseNetBC:
    """DenseNet-BC; the paper's default is L=76, k=12."""
    return DenseNetBC(num_classes, in_channels, depth, growth_rate, compression)
