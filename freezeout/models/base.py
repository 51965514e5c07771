"""What every model here is: a chain of layer groups, input to output, the head last."""
from __future__ import annotations

import math

import torch
from torch import nn


class GroupedModel(nn.Module):
    """A network that is the composition of its layer groups (DESIGN §1 "Layer groups").

    Subclasses fill ``self.groups`` (an ``nn.ModuleList``); the forward pass runs them in order,
    so the groups are exactly the units FreezeOut anneals and freezes.
    """

    groups: nn.ModuleList

    def layer_groups(self) -> list[nn.Module]:
        """The ordered layer groups, from input to output; the last one is the head."""
        return list(self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for group in self.groups:
            x = group(x)
        return x


def classifier_head(channels: int, num_classes: int, norm: bool = True) -> nn.Sequential:
    """The head group: final BN + ReLU (when the body ends un-normalised), pooling, linear."""
    layers: list[nn.Module] = [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)] if norm else []
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> None:
    """The paper's initialisation: He-normal convs, BN weight 1 / bias 0, zero linear bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
