"""Forward FLOPs per layer group, counted on the real model: the costs the flops speedup model
and the groups report weigh each group by."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def group_costs(model: nn.Module, input_shape: Sequence[int]) -> list[float]:
    """Forward FLOPs of each layer group for one input of ``input_shape`` (with batch dim),
    counted with ``FlopCounterMode`` on the real model (in eval mode; its mode is restored)."""
    groups = model.layer_groups()
    param = next(model.parameters())
    x = torch.zeros(*input_shape, device=param.device, dtype=param.dtype)
    counts = [0.0] * len(groups)
    hooks = []
    counter = FlopCounterMode(display=False)

    def bracket(i: int):
        def pre(module, args):
            counts[i] -= counter.get_total_flops()

        def post(module, args, out):
            counts[i] += counter.get_total_flops()
        return pre, post

    for i, g in enumerate(groups):
        for root in g.roots:  # a group's roots are disjoint subtrees: their counts add up
            pre, post = bracket(i)
            hooks += [root.register_forward_pre_hook(pre), root.register_forward_hook(post)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return counts
