"""Adaptive freezing in the spirit of AutoFreeze (Liu et al., 2021), on the same layer groups:
every ``interval`` iterations the longest prefix of active groups whose gradient-norm change is
below a percentile of the active groups' changes freezes. Rates follow the baseline's cosine."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from ..controller import FreezeOut, OptimizerFactory
from ..schedule import Schedule
from .registry import SCHEDULE_KEYS, Rule, ScheduleInputs, need, register


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated (numpy's default)."""
    v = sorted(values)
    rank = q / 100.0 * (len(v) - 1)
    lo = math.floor(rank)
    hi, frac = min(lo + 1, len(v) - 1), rank - lo
    return v[lo] if frac == 0 else v[lo] + (v[hi] - v[lo]) * frac  # (no inf * 0 at an exact rank)


def autofreeze_count(changes: Sequence[float], q: float, max_per_check: int) -> int:
    """How many of the leading active groups AutoFreeze freezes at a check.

    ``changes`` are the relative gradient-norm changes of the active groups, in order, the head
    last. The longest prefix of groups (the head excluded) whose change is strictly below the
    ``q``-th percentile of all active groups' changes freezes, at most ``max_per_check`` groups.
    """
    threshold = percentile(changes, q)
    count = 0
    for change in changes[:-1]:
        if count >= max_per_check or not change < threshold:
            break
        count += 1
    return count


def relative_change(now: float, before: float) -> float:
    """``|now - before| / before``; infinite when there was no gradient before (never "settled")."""
    return abs(now - before) / before if before > 0 else math.inf


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


def _schedule(strategy: Mapping[str, Any], run: ScheduleInputs) -> Schedule:
    return Schedule((1.0,) * run.n, run.total_iters, run.lr, False, anneal="global")


def _controller(strategy: Mapping[str, Any], groups: Sequence, schedule: Schedule, make_optimizer) -> AutoFreeze:
    return AutoFreeze(groups, schedule, make_optimizer, strategy["interval"], strategy["percentile"],
                      strategy["max_per_check"])


def _check(strategy: Mapping[str, Any]) -> None:
    need(strategy["interval"] >= 1, strategy, "interval", "an integer >= 1")
    need(0.0 < strategy["percentile"] < 100.0, strategy, "percentile", "(0, 100)")
    need(strategy["max_per_check"] >= 1, strategy, "max_per_check", "an integer >= 1")


register(Rule("autofreeze", _schedule, controller=_controller, adaptive=True,
              options=("interval", "percentile", "max_per_check"), unread=tuple(SCHEDULE_KEYS), refuses_unread=True,
              check=_check))
