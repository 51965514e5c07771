"""What every model here is: a chain of layer groups, input to output, the head last."""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import torch
from torch import nn


class LayerGroup:
    """One unit of freezing (docs/design.md, "Layer groups"): whole module subtrees (``roots``)
    plus any parameters that belong to no module of their own (``loose``, e.g. a ViT's class token).

    It offers the two ``nn.Module`` methods the harness uses on a group, ``parameters()`` and
    ``modules()``, so the controller, the FLOP counter and the time model treat a group of a
    built-in model and one found in a library model alike.
    """

    def __init__(self, name: str, roots: Iterable[nn.Module], loose: Iterable[nn.Parameter] = ()):
        self.name = name
        self.roots = list(roots)
        self.loose = list(loose)

    def parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter of the group, each once: the roots' and the loose ones."""
        seen: set[int] = set()
        for p in [p for m in self.roots for p in m.parameters()] + self.loose:
            if id(p) not in seen:
                seen.add(id(p))
                yield p

    def modules(self) -> Iterator[nn.Module]:
        """Every module of the group's subtrees (the roots included)."""
        for root in self.roots:
            yield from root.modules()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"LayerGroup({self.name!r}, {len(self.roots)} module(s), {n} parameters)"


class GroupedModel(nn.Module):
    """A network that is the composition of its layer groups (docs/design.md, "Layer groups").

    Subclasses fill ``self.groups`` (an ``nn.ModuleList``); the forward pass runs them in order,
    so the groups are exactly the units FreezeOut anneals and freezes.
    """

    groups: nn.ModuleList

    def layer_groups(self) -> list[LayerGroup]:
        """The ordered layer groups, from input to output; the last one is the head."""
        return [LayerGroup(f"groups.{i} ({type(g).__name__})", [g]) for i, g in enumerate(self.groups)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for group in self.groups:
            x = group(x)
        return x

    def forward_from(self, start: int, x: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """Groups ``start`` to ``stop`` (default: the end) applied to ``x``, the output of group
        ``start - 1``: what the frozen-prefix cache trains from."""
        for group in self.groups[start:stop]:
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
