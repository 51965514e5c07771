"""Composer's LayerFreezing on the same layer groups: no per-group rates (the baseline's cosine
runs on); at each epoch end the first groups are frozen by the fraction of training done."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..schedule import Schedule
from .registry import SCHEDULE_KEYS, Rule, ScheduleInputs, need, register


@dataclass
class LayerFreezingConfig:
    """``strategy=layer_freezing``'s settings."""

    name: str = "layer_freezing"
    freeze_start: float = 0.5  # fraction of training before the first group freezes, in [0, 1)
    freeze_level: float = 1.0  # fraction of the non-head groups frozen by the end, in (0, 1]


def layer_freezing_count(tau: float, n: int, freeze_start: float, freeze_level: float) -> int:
    """Groups frozen at the end of an epoch when a fraction ``tau`` of training is done.

    Composer's LayerFreezing (``composer.algorithms.LayerFreezing``, its ``_freeze_schedule`` and
    ``freeze_layers``): no freezing while ``tau <= freeze_start``, then
    ``int(freeze_level * (tau - freeze_start) / (1 - freeze_start) * n_layers)`` layers, where
    ``n_layers`` excludes the last one, so the head never freezes. Here a layer is a layer group
    (Composer's are the leaf modules with parameters), so ``n_layers = n - 1``. The product is
    rounded to 9 digits before the floor so that float noise cannot drop an exact integer.
    """
    if tau <= freeze_start:
        return 0
    fraction = freeze_level * (tau - freeze_start) / (1.0 - freeze_start)
    return min(n - 1, int(round(fraction * (n - 1), 9)))


def layer_freezing_times(n: int, iters_per_epoch: int, total_iters: int, freeze_start: float,
                         freeze_level: float) -> list[float]:
    """Freezing time (fraction of training) of each of ``n`` groups under LayerFreezing: the rule
    runs at every epoch end (iteration ``e * iters_per_epoch``) and freezes the first
    :func:`layer_freezing_count` groups; a group that never freezes within training gets 1.0."""
    times = [1.0] * n
    for end in range(iters_per_epoch, total_iters, iters_per_epoch):  # the last epoch end is the end
        tau = end / total_iters
        for i in range(layer_freezing_count(tau, n, freeze_start, freeze_level)):
            times[i] = min(times[i], tau)
    return times


def _schedule(strategy: Mapping[str, Any], run: ScheduleInputs) -> Schedule:
    times = layer_freezing_times(run.n, run.iters_per_epoch, run.total_iters, strategy["freeze_start"],
                                 strategy["freeze_level"])
    return Schedule(tuple(times), run.total_iters, run.lr, False, anneal="global")


def _check(strategy: Mapping[str, Any]) -> None:
    need(0.0 <= strategy["freeze_start"] < 1.0, strategy, "freeze_start", "[0, 1)")
    need(0.0 < strategy["freeze_level"] <= 1.0, strategy, "freeze_level", "(0, 1]")


register(Rule("layer_freezing", _schedule, LayerFreezingConfig, at_epoch_ends=True, unread=tuple(SCHEDULE_KEYS),
              refuses_unread=True, check=_check))
