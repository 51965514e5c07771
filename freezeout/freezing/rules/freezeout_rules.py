"""FreezeOut's own rules: ``linear``, ``squared`` and ``cubic`` spread the freezing times between
``t_0`` and 1 by ``s(x) = x, x², x³`` (see :mod:`freezeout.freezing.schedule`); ``none`` is the
baseline, plain cosine annealing with nothing frozen, which reads none of FreezeOut's settings.
Their schema is :class:`~.registry.FreezeOutStrategy` (no options of their own)."""
from __future__ import annotations

from typing import Any, Mapping

from ..schedule import BASELINE, STRATEGY_POWERS, Schedule
from .registry import CACHE_KEYS, SCHEDULE_KEYS, Rule, ScheduleInputs, register


def freezeout_schedule(strategy: Mapping[str, Any], run: ScheduleInputs) -> Schedule:
    return Schedule.freezeout(run.n, run.t_0, strategy["name"], run.total_iters, run.lr, run.scale_lr)


# The baseline first: sweeps and reports list it first.
register(Rule(BASELINE, freezeout_schedule, freezeout=True, baseline=True, unread=(*SCHEDULE_KEYS, *CACHE_KEYS)))
for _name in STRATEGY_POWERS:  # linear, squared, cubic
    register(Rule(_name, freezeout_schedule, freezeout=True))
