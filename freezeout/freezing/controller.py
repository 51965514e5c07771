"""The FreezeOut controller: one optimizer parameter group per layer group, per-group learning
rates, and freezing (docs/design.md, "Freezing"). Knows no architecture and no optimizer: it sees a
list of layer groups, a :class:`~freezeout.freezing.schedule.Schedule` and a function that builds any
``torch.optim`` optimizer from parameter groups.
"""
from __future__ import annotations

import types
from typing import Callable, Sequence

import torch
from torch import nn

from .schedule import Schedule

#: Builds an optimizer from a list of parameter groups (``{"params": [...], ...}`` dicts).
OptimizerFactory = Callable[[list[dict]], torch.optim.Optimizer]


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
    always a prefix, because the times grow with the group index. A frozen group leaves the
    optimizer with its state (momentum, Adam moments): no step, no weight decay.
    """

    def __init__(self, groups: Sequence, schedule: Schedule, make_optimizer: OptimizerFactory):
        if len(groups) != len(schedule.times):
            raise ValueError(f"{len(groups)} layer groups but a schedule for {len(schedule.times)}")
        self.groups = list(groups)
        self.schedule = schedule
        _check_disjoint(self.groups)
        self.optimizer = make_optimizer([
            {"params": [p for p in g.parameters() if p.requires_grad], "group_index": i}
            for i, g in enumerate(self.groups)
        ])
        self.num_frozen = 0
        #: Iteration at which each group froze (None while it trains): the realised schedule.
        self.frozen_at: list[int | None] = [None] * len(self.groups)

    @property
    def times(self) -> tuple[float, ...]:
        return self.schedule.times

    @property
    def freeze_at(self) -> tuple[int, ...]:
        return self.schedule.freeze_at

    def step(self, j: int) -> int:
        """Set learning rates for iteration ``j`` and freeze what is due; returns #frozen groups."""
        freeze_at, n = self.schedule.freeze_at, len(self.groups)
        while self.num_frozen < n and j >= freeze_at[self.num_frozen]:
            self._freeze(self.num_frozen, j)
        param_groups, lr_at = self.optimizer.param_groups, self.schedule.lr_at
        for i in range(self.num_frozen, n):
            param_groups[i]["lr"] = lr_at(i, j)
        return self.num_frozen

    def freeze_prefix(self, k: int, j: int | None = None) -> None:
        """Freeze groups until the first ``k`` are frozen (at iteration ``j``, when known)."""
        if k < self.num_frozen:
            raise ValueError(f"cannot unfreeze groups: {self.num_frozen} are frozen, asked for {k}")
        while self.num_frozen < k:
            self._freeze(self.num_frozen, j)

    def _freeze(self, i: int, j: int | None) -> None:
        """Freeze group ``i``: out of autograd and out of the optimizer (no step, decay, state)."""
        freeze_module(self.groups[i])
        pg = self.optimizer.param_groups[i]
        for p in pg["params"]:
            self.optimizer.state.pop(p, None)  # drop momentum / Adam moments: frees memory too
        pg["params"], pg["lr"] = [], 0.0
        self.num_frozen = i + 1
        self.frozen_at[i] = j

    def current_lr(self) -> float:
        """Learning rate of the first active group (0.0 when everything is frozen)."""
        if self.num_frozen >= len(self.groups):
            return 0.0
        return self.optimizer.param_groups[self.num_frozen]["lr"]

    def state_dict(self) -> dict:
        """Everything needed to resume: the frozen prefix, when it froze, the optimizer state."""
        return {"num_frozen": self.num_frozen, "frozen_at": list(self.frozen_at),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`: re-freeze the same prefix, then load the optimizer."""
        self.freeze_prefix(state["num_frozen"])
        self.frozen_at = list(state.get("frozen_at") or self.frozen_at)
        self.optimizer.load_state_dict(state["optimizer"])


def _check_disjoint(groups: Sequence) -> None:
    """Every parameter must belong to exactly one group, or freezing would be ambiguous."""
    seen: set[int] = set()
    for i, g in enumerate(groups):
        for p in g.parameters():
            if id(p) in seen:
                raise ValueError(f"layer group {i} shares a parameter with an earlier group")
            seen.add(id(p))
