"""The AutoFreeze controller (:mod:`.autofreeze` declares the rule): in a module of its own because
it needs torch, which declaring the rule does not."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from ..controller import FreezeOut, OptimizerFactory
from ..schedule import Schedule
from .autofreeze import autofreeze_count, relative_change


class AutoFreeze(FreezeOut):
    """The AutoFreeze controller.

    Every ``interval`` iterations it reads each active group's gradient norm (the gradients of
    the step just done) and its relative change since the previous check, and freezes the longest
    prefix of active groups whose change is below the ``q``-th percentile of the active groups'
    changes (at most ``max_per_check`` groups per check; never the head; see
    :func:`autofreeze_count`). Rates follow the baseline's cosine over all of training
    (``Schedule.anneal == "global"``). Where it differs from the paper: the paper fine-tunes
    pretrained transformer layers and judges each layer by its gradient norm change accumulated
    over the interval; here the layers are layer groups, trained from scratch, and the norm is
    that of one step's gradient at each check (no per-step cost in between).
    """

    def __init__(self, groups: Sequence, schedule: Schedule, make_optimizer: OptimizerFactory, interval: int,
                 percentile: float, max_per_check: int):
        super().__init__(groups, schedule, make_optimizer)
        self.interval, self.percentile, self.max_per_check = interval, percentile, max_per_check
        self.previous: list[float | None] = [None] * len(self.groups)  # norms at the last check
        #: The gradient norms a checkpoint saved: a run resumed exactly at a check has no gradients
        #: of the step before it (they are not in the checkpoint), so that check reads these.
        self.resumed_norms: list[float] | None = None

    def step(self, j: int) -> int:
        if j > 0 and j % self.interval == 0 and self.num_frozen < len(self.groups) - 1:
            self._check(j)
        return super().step(j)

    def _check(self, j: int) -> None:
        active = range(self.num_frozen, len(self.groups))
        resumed, self.resumed_norms = self.resumed_norms, None
        if resumed is not None and not any(p.grad is not None for i in active for p in self.groups[i].parameters()):
            norms = {i: resumed[i] for i in active}
        else:
            norms = dict(zip(active, _grad_norms([self.groups[i] for i in active])))
        if not all(math.isfinite(v) for v in norms.values()):
            return  # a step the fp16 scaler skipped left inf/NaN gradients: no decision, no new reference
        if all(self.previous[i] is not None for i in active):
            changes = [relative_change(norms[i], self.previous[i]) for i in active]
            self.freeze_prefix(self.num_frozen + autofreeze_count(changes, self.percentile, self.max_per_check), j)
        self.previous = [norms.get(i) for i in range(len(self.groups))]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "previous": list(self.previous), "norms": _grad_norms(self.groups)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.previous = list(state["previous"])
        self.resumed_norms = state.get("norms")


def _grad_norms(groups: Sequence) -> list[float]:
    """L2 norm of each group's current gradients (0.0 for a group where none has one), read back
    from the device in one transfer (one host sync per check, not one per group)."""
    norms = []
    for group in groups:
        grads = [p.grad for p in group.parameters() if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                     if grads else None)
    device = next((n.device for n in norms if n is not None), torch.device("cpu"))
    values = [n if n is not None else torch.zeros((), device=device) for n in norms]
    return torch.stack([v.float().to(device) for v in values]).tolist() if values else []




def build(strategy: Mapping[str, Any], groups: Sequence, schedule: Schedule, make_optimizer) -> AutoFreeze:
    """The rule's controller factory (``Rule.controller``)."""
    return AutoFreeze(groups, schedule, make_optimizer, strategy["interval"], strategy["percentile"],
                      strategy["max_per_check"])
