"""Adaptive freezing in the spirit of AutoFreeze (Liu et al., 2021), on the same layer groups:
every ``interval`` iterations the longest prefix of active groups whose gradient-norm change is
below a percentile of the active groups' changes freezes. Rates follow the baseline's cosine.
Its controller, :class:`~.autofreeze_controller.AutoFreeze`, needs torch and lives beside it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..schedule import Schedule
from .registry import SCHEDULE_KEYS, Rule, ScheduleInputs, need, register


@dataclass
class AutoFreezeConfig:
    """``strategy=autofreeze``'s settings."""

    name: str = "autofreeze"
    interval: int = 50  # iterations between checks of the gradient norms
    percentile: float = 50.0  # groups whose norm change is below this percentile may freeze
    max_per_check: int = 1  # groups frozen at one check, at most


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


def _schedule(strategy: Mapping[str, Any], run: ScheduleInputs) -> Schedule:
    return Schedule((1.0,) * run.n, run.total_iters, run.lr, False, anneal="global")


def _check(strategy: Mapping[str, Any]) -> None:
    need(strategy["interval"] >= 1, strategy, "interval", "an integer >= 1")
    need(0.0 < strategy["percentile"] < 100.0, strategy, "percentile", "(0, 100)")
    need(strategy["max_per_check"] >= 1, strategy, "max_per_check", "an integer >= 1")


register(Rule("autofreeze", _schedule, AutoFreezeConfig, controller=f"{__package__}.autofreeze_controller:build",
              adaptive=True, unread=tuple(SCHEDULE_KEYS), refuses_unread=True, check=_check))

