"""Any ``nn.Module`` as a FreezeOut model: a thin wrapper that knows the net's layer groups.

Groups are kept as names relative to the user's net (``layer1.0``, not ``net.layer1.0``) and
resolved on every :meth:`ExternalModel.layer_groups` call, so a deep copy groups its own modules.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, one_line
from .base import LayerGroup
from .chain import build_groups, check_chain, merge_groups
from .flops import group_costs
from .grouping import GroupSpec, explicit_groups, forward_order_groups, timm_groups
from .sources import ModelBuildError
from .trace import first_conv, trace_forward


class ExternalModel(nn.Module):
    """The user's ``net`` and its layer groups (a chain, head last). ``grouping`` says how they
    were found; ``notes`` holds what was changed on the net (for the run's log)."""

    def __init__(self, net: nn.Module, specs: Sequence[GroupSpec], grouping: str = "", notes: Sequence[str] = ()):
        super().__init__()
        self.net = net
        self.specs = list(specs)
        self.grouping = grouping
        self.notes = list(notes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def layer_groups(self) -> list[LayerGroup]:
        """The ordered layer groups, from input to output; the last one is the head."""
        return build_groups(self.net, self.specs)


def group_model(net: nn.Module, input_shape: Sequence[int], groups="auto", max_groups: int | None = None,
                notes: Sequence[str] = ()) -> ExternalModel:
    """Wrap ``net`` with its layer groups: ``groups="auto"`` (timm's ``group_matcher`` where the
    model has one and it gives a chain, else forward order) or a list of parameter-name prefixes
    / regexes; then at most ``max_groups`` groups of about equal FLOPs. Raises
    :class:`ConfigError` (one line) for a grouping that is not a chain."""
    try:
        trace = trace_forward(net, input_shape)
    except Exception as e:
        raise ModelBuildError(_input_hint(input_shape, e)) from None
    if groups == "auto":
        specs, how = timm_groups(net, trace), "timm's group_matcher"
        if specs is not None:
            try:
                check_chain(net, build_groups(net, specs), trace)
            except ConfigError:  # a matcher that groups this model out of forward order: ours
                specs = None
        if specs is None:
            specs, how = forward_order_groups(net, trace), "forward order"
    else:
        specs, how = explicit_groups(net, trace, [str(g) for g in groups]), "model.groups"
    model = ExternalModel(net, specs, how, notes)
    check_chain(net, model.layer_groups(), trace)
    if max_groups is not None and len(specs) > max_groups:
        try:
            costs = group_costs(model, input_shape)
        except Exception as e:
            raise ModelBuildError(f"counting FLOPs per group for model.max_groups failed: {one_line(e)}") from None
        model.specs = merge_groups(specs, costs, max_groups)
        model.grouping = f"{how}, merged to {len(model.specs)} by FLOPs (model.max_groups={max_groups})"
    return model


def adapt_stem(net: nn.Module, in_channels: int, image_size: Sequence[int]) -> str | None:
    """Make the net take ``in_channels``: the first ``nn.Conv2d`` the forward pass runs, if it
    takes another number of channels, is replaced by a new conv with the same settings, its
    weights drawn from a normal distribution with the original kernel's standard deviation
    (random, like the original: torchvision's Kaiming fan-out init does not depend on the input
    channels), its bias kept. Returns a one-line note of the change, or None."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return None
    try:  # the pass stops at the stem, so the guessed channels only meet what precedes it
        name = first_conv(net, (1, convs[0].in_channels, *image_size))
    except Exception as e:
        raise ModelBuildError(_input_hint((1, convs[0].in_channels, *image_size), e)) from None
    if name is None:
        return None
    old = net.get_submodule(name)
    if old.in_channels == in_channels:
        return None
    if old.groups != 1:
        raise ConfigError(f"the model's first conv {name!r} is grouped (groups={old.groups}): it cannot be adapted "
                          f"from {old.in_channels} to the data's {in_channels} input channels")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    bias=old.bias is not None, padding_mode=old.padding_mode,
                    device=old.weight.device, dtype=old.weight.dtype)
    if not old.weight.is_meta:  # a meta model (validation) has no values to draw from
        with torch.no_grad():
            new.weight.normal_(0.0, old.weight.std().item())
            if old.bias is not None:
                new.bias.copy_(old.bias)
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent), attr, new)
    return (f"first conv {name!r} takes {old.in_channels} channels, the data has {in_channels}: replaced by a "
            f"{in_channels}-channel conv, randomly initialised like the original")


def _input_hint(input_shape: Sequence[int], error: Exception) -> str:
    if len(input_shape) != 4:  # e.g. (1, 28, 28): an image without its batch dimension
        return (f"the model fails on an input of shape {tuple(input_shape)} ({one_line(error, 200)}); "
                "input_shape is one input with its batch dimension: (1, C, H, W), e.g. (1, 1, 28, 28)")
    c, h, w = input_shape[1:]
    return (f"the model fails on the data's {c}x{h}x{w} inputs ({one_line(error, 250)}); size-dependent "
            f"models take their size in model.kwargs, e.g. model.kwargs={{img_size:{h},patch_size:4}} "
            "for a timm ViT")
