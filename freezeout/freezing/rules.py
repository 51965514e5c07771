"""Freezing rules by name, on the same layer groups: FreezeOut's (``linear``, ``squared``,
``cubic``; ``none`` is the baseline) and two peers, ``layer_freezing`` and ``autofreeze``.
Pure math, no torch: the controllers in :mod:`freezeout.freezing.controller` apply these rules.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .schedule import STRATEGIES as FREEZEOUT_STRATEGIES
from .schedule import Schedule

PEERS = ("layer_freezing", "autofreeze")
STRATEGIES = (*FREEZEOUT_STRATEGIES, *PEERS)
ADAPTIVE = ("autofreeze",)  # the schedule is known only once the run has trained


def layer_freezing_count(tau: float, n: int, freeze_start: float, freeze_level: float) -> int:
    """Groups frozen at the end of an epoch when a fraction ``tau`` of training is done.

    Composer's LayerFreezing (composer/algorithms/layer_freezing/layer_freezing.py,
    ``_freeze_schedule`` and ``freeze_layers``): no freezing while ``tau <= freeze_start``, then
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


def strategy_schedule(strategy: Mapping[str, Any], n: int, t_0: float, scale_lr: bool, iters_per_epoch: int,
                      total_iters: int, lr: float) -> Schedule:
    """The schedule a strategy config (``cfg.strategy``) fixes before training. For an adaptive
    rule it freezes nothing by itself (every time 1.0): its controller decides during the run."""
    name = strategy["name"]
    if name in FREEZEOUT_STRATEGIES:
        return Schedule.freezeout(n, t_0, name, total_iters, lr, scale_lr)
    if name == "layer_freezing":
        times = layer_freezing_times(n, iters_per_epoch, total_iters, strategy["freeze_start"],
                                     strategy["freeze_level"])
        return Schedule(tuple(times), total_iters, lr, False, anneal="global")
    if name in ADAPTIVE:
        return Schedule((1.0,) * n, total_iters, lr, False, anneal="global")
    raise ValueError(f"strategy={name!r} is unknown; allowed: {', '.join(STRATEGIES)}")


def realised_times(frozen_at: Sequence[int | None], total_iters: int) -> list[float]:
    """Freezing times of a run as it happened: the iteration each group froze at, as a fraction of
    training (1.0 for groups that never froze)."""
    return [1.0 if j is None else j / total_iters for j in frozen_at]
