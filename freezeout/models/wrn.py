"""Wide ResNet (Zagoruyko & Komodakis): pre-activation basic blocks, widths 16k, 32k, 64k.

Layer groups: the stem conv, every residual block, then the head.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import GroupedModel, classifier_head, init_weights
from .registry import register


class WideBasic(nn.Module):
    """BN-ReLU-Conv3x3-BN-ReLU-(dropout)-Conv3x3 with a 1x1 shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + skip


class WideResNet(GroupedModel):
    """WRN-depth-widen_factor; ``(depth - 4) / 6`` blocks per stage."""

    def __init__(self, num_classes: int, in_channels: int = 3, depth: int = 28, widen_factor: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"model.depth={depth} does not fit Wide ResNet: need (depth - 4) % 6 == 0 and "
                "depth >= 10 (e.g. 10, 16, 22, 28, 40)"
            )
        if widen_factor < 1:
            raise ValueError(f"model.widen_factor={widen_factor}; need >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}; allowed: [0, 1)")
        per_stage = (depth - 4) // 6
        groups: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        cin = 16
        for stage, width in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            for b in range(per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                groups.append(WideBasic(cin, width, stride, dropout))
                cin = width
        groups.append(classifier_head(cin, num_classes))
        self.groups = nn.ModuleList(groups)
        init_weights(self)


@register("wrn")
def wrn(num_classes: int, in_channels: int = 3, depth: int = 28, widen_factor: int = 10,
        dropout: float = 0.0) -> WideResNet:
    """Wide ResNet; WRN-28-10 by default."""
    return WideResNet(num_classes, in_channels, depth, widen_factor, dropout)
