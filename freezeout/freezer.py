"""The FreezeOut controller: one optimizer parameter group per layer group, per-group learning
rates, and freezing (DESIGN §1 "Freezing"). Knows no architecture: it only sees a list of modules.
"""
from __future__ import annotations

import types
from typing import Sequence

import torch
from torch import nn

from .schedule import freeze_iteration, layer_times, learning_rate


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """Replacement ``train`` for every module of a frozen group: always eval mode."""
    return nn.Module.train(self, False)


def freeze_module(module: nn.Module) -> None:
    """Freeze ``module`` (a layer group, or any module) for good: no gradients, and every module
    in it in eval mode even across ``model.train()`` (each one's ``train`` is replaced by one that
    keeps eval mode): norm layers keep their running statistics fixed, dropout and stochastic
    depth (DropPath) are off, so the frozen group computes a fixed function of its input."""
    for p in module.parameters():
        p.requires_grad_(False)
        p.grad = None
    for m in module.modules():
        m.train = types.MethodType(_stay_in_eval, m)
        m.eval()


class FreezeOut:
    """Drives per-group learning rates and freezing for a model's ordered layer groups.

    Call :meth:`step` once per iteration *before* the optimizer step: it sets each active group's
    rate for iteration ``j`` and freezes the groups whose time has come. The frozen groups are
    always a prefix, because the times grow with the group index.
    """

    def __init__(
        self,
        groups: Sequence[nn.Module],
        total_iters: int,
        t_0: float = 0.8,
        strategy: str = "cubic",
        lr: float = 0.1,  # base learning rate, before scale_lr
        scale_lr: bool = True,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 1e-4,  # L2 on every parameter, as in the paper's code
    ):
        if total_iters < 1:
            raise ValueError(f"total_iters={total_iters!r}; need at least 1 iteration")
        self.groups = list(groups)
        self.total_iters = int(total_iters)
        self.lr, self.scale_lr = lr, scale_lr
        self.times = layer_times(len(self.groups), t_0, strategy)
        self.freeze_at = [freeze_iteration(t, self.total_iters) for t in self.times]
        _check_disjoint(self.groups)
        param_groups = [
            {"params": [p for p in g.parameters() if p.requires_grad], "group_index": i}
            for i, g in enumerate(self.groups)
        ]
        self.optimizer = torch.optim.SGD(
            param_groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
        self.num_frozen = 0

    def step(self, j: int) -> int:
        """Set learning rates for iteration ``j`` and freeze what is due; returns #frozen groups."""
        while self.num_frozen < len(self.groups) and j >= self.freeze_at[self.num_frozen]:
            self._freeze(self.num_frozen)
        for i in range(self.num_frozen, len(self.groups)):
            self.optimizer.param_groups[i]["lr"] = learning_rate(
                j, self.times[i], self.total_iters, self.lr, self.scale_lr
            )
        return self.num_frozen

    def _freeze(self, i: int) -> None:
        """Freeze group ``i``: out of autograd and out of the optimizer (no step, decay, momentum)."""
        freeze_module(self.groups[i])
        pg = self.optimizer.param_groups[i]
        for p in pg["params"]:
            self.optimizer.state.pop(p, None)  # drop the momentum buffer: it frees memory too
        pg["params"], pg["lr"] = [], 0.0
        self.num_frozen = i + 1

    def current_lr(self) -> float:
        """Learning rate of the first active group (0.0 when everything is frozen)."""
        if self.num_frozen >= len(self.groups):
            return 0.0
        return self.optimizer.param_groups[self.num_frozen]["lr"]

    def state_dict(self) -> dict:
        """Everything needed to resume: the frozen count and the optimizer state."""
        return {"num_frozen": self.num_frozen, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`: re-freeze the same prefix, then load the optimizer."""
        if state["num_frozen"] < self.num_frozen:
            raise ValueError("cannot unfreeze groups: load the state into a fresh controller")
        while self.num_frozen < state["num_frozen"]:
            self._freeze(self.num_frozen)
        self.optimizer.load_state_dict(state["optimizer"])


def _check_disjoint(groups: Sequence[nn.Module]) -> None:
    """Every parameter must belong to exactly one group, or freezing would be ambiguous."""
    seen: set[int] = set()
    for i, g in enumerate(groups):
        for p in g.parameters():
            if id(p) in seen:
                raise ValueError(f"layer group {i} shares a parameter with an earlier group")
            seen.add(id(p))
