"""VGG with BatchNorm. Layer groups: every conv block (conv-BN-ReLU, plus the max-pool that
follows it, if any), then the head. Max-pools use ceil mode so any input size of at least 1 works.
"""
from __future__ import annotations

from torch import nn

from .base import GroupedModel, classifier_head, init_weights
from .registry import register

#: Channel plans in units of the base ``width`` (64 in the original); "M" is a 2x2 max-pool.
PLANS = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    13: [1, 1, "M", 2, 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"],
    19: [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"],
}


class VGG(GroupedModel):
    """VGG-``depth`` with BatchNorm; ``width`` is the first block's channel count (64: original)."""

    def __init__(self, num_classes: int, in_channels: int = 3, depth: int = 16, width: int = 64):
        super().__init__()
        if depth not in PLANS:
            raise ValueError(f"model.depth={depth} is not a VGG depth; allowed: {sorted(PLANS)}")
        if width < 1:
            raise ValueError(f"model.width={width}; need >= 1")
        groups: list[nn.Sequential] = []
        cin = in_channels
        for item in PLANS[depth]:
            if item == "M":
                groups[-1].append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            cout = item * width
            groups.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
            ))
            cin = cout
        # The body ends in BN-ReLU already, so the head is pooling + linear only.
        self.groups = nn.ModuleList([*groups, classifier_head(cin, num_classes, norm=False)])
        init_weights(self)


@register("vgg")
def vgg(num_classes: int, in_channels: int = 3, depth: int = 16, width: int = 64) -> VGG:
    """VGG-16 with BatchNorm by default."""
    return VGG(num_classes, in_channels, depth, width)
