"""The registry of freezing rules: one :class:`Rule` per name, declared once in its own module
(:mod:`.freezeout_rules`, :mod:`.layer_freezing`, :mod:`.autofreeze`), with everything the
harness needs to know about it: how it builds its schedule and its controller, whether it decides
during the run, which settings it takes and which it does not read, and its checks.

Adding a rule: one module here that calls :func:`register`, one yaml in ``conf/strategy/``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ...errors import ConfigError
from ..controller import FreezeOut
from ..schedule import Schedule

#: Top-level settings of FreezeOut's own schedule (t_i from t_0, rates scaled by 1/t_i) and of a
#: run's length (const_time): a rule either reads them or must be given their defaults.
SCHEDULE_KEYS = {"t_0": 0.8, "scale_lr": True, "const_time": False}
#: Settings of the frozen-prefix cache: they mean nothing for a rule that freezes nothing.
CACHE_KEYS = ("cache_frozen", "cache_memory_gb", "cache_host")


@dataclass(frozen=True)
class ScheduleInputs:
    """What a rule's schedule is computed from: the run's groups, length and base rate."""

    n: int  # layer groups, the head last
    t_0: float  # FreezeOut's first freezing time, before scaling
    scale_lr: bool  # start group i at lr / t_i
    iters_per_epoch: int
    total_iters: int
    lr: float  # the optimizer's base rate


@dataclass(frozen=True)
class Rule:
    """One freezing rule, by name (``strategy=NAME``)."""

    name: str
    #: ``schedule(strategy_cfg, inputs)``: the schedule fixed before training (an adaptive rule's
    #: freezes nothing by itself: its controller decides during the run).
    schedule: Callable[[Mapping[str, Any], ScheduleInputs], Schedule]
    #: ``controller(strategy_cfg, groups, schedule, make_optimizer)``; None: the plain controller.
    controller: Callable[..., Any] | None = None
    adaptive: bool = False  # its freezing times are known only once it has run
    at_epoch_ends: bool = False  # it decides at epoch ends (a loop must say how many steps an epoch has)
    freezeout: bool = False  # one of FreezeOut's own schedules (the paper's estimate applies)
    options: tuple[str, ...] = ()  # its own settings, ``strategy.KEY``
    #: Top-level settings it does not read. ``refuses_unread``: setting one of SCHEDULE_KEYS to
    #: anything but its default is an error (else the sweeper just drops them from its jobs).
    unread: tuple[str, ...] = ()
    refuses_unread: bool = False
    check: Callable[[Mapping[str, Any]], None] = field(default=lambda strategy: None)


_RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Declare ``rule`` under its name (once)."""
    if rule.name in _RULES:
        raise ValueError(f"freezing rule {rule.name!r} is declared twice")
    _RULES[rule.name] = rule
    return rule


def rule_names() -> tuple[str, ...]:
    """Every registered rule's name, in declaration order."""
    return tuple(_RULES)


def get_rule(name: str) -> Rule:
    """The rule called ``name``; a ConfigError naming the allowed names otherwise."""
    if name not in _RULES:
        raise ConfigError(f"strategy={name!r} is unknown; allowed: {', '.join(_RULES)}")
    return _RULES[name]


def check_strategy_config(cfg: Mapping[str, Any]) -> None:
    """The run config's rule: its name, its own settings, and no setting it would ignore."""
    strategy = cfg["strategy"]
    rule = get_rule(strategy["name"])
    rule.check(strategy)
    if rule.refuses_unread:
        for key, default in SCHEDULE_KEYS.items():
            if key in rule.unread and cfg.get(key, default) != default:
                raise ConfigError(f"{key}={cfg[key]} does not apply to strategy={rule.name} (it is a setting of "
                                  f"FreezeOut's own schedules); leave it at its default {key}={default}")


def need(ok: bool, strategy: Mapping[str, Any], key: str, allowed: str) -> None:
    """A rule's check: ConfigError naming ``strategy.KEY``, its value and what is allowed."""
    if not ok:
        raise ConfigError(f"strategy.{key}={strategy[key]} for {strategy['name']}; allowed: {allowed}")


def strategy_schedule(strategy: Mapping[str, Any], n: int, t_0: float, scale_lr: bool, iters_per_epoch: int,
                      total_iters: int, lr: float) -> Schedule:
    """The schedule a strategy config (``cfg.strategy``) fixes before training."""
    return get_rule(strategy["name"]).schedule(strategy, ScheduleInputs(n, t_0, scale_lr, iters_per_epoch,
                                                                        total_iters, lr))


def run_schedule(cfg: Mapping[str, Any], n: int, iters_per_epoch: int, total_iters: int) -> Schedule:
    """The schedule of a run config over ``n`` groups and ``total_iters`` iterations: the one way
    the trainer, the groups report and the sweep plan compute it."""
    return strategy_schedule(cfg["strategy"], n, cfg["t_0"], cfg["scale_lr"], iters_per_epoch, total_iters,
                             cfg["optimizer"]["lr"])


def make_controller(strategy: Mapping[str, Any], groups: Sequence, schedule: Schedule, make_optimizer):
    """The controller of a strategy config over ``groups`` (the plain FreezeOut controller unless
    the rule brings its own)."""
    rule = get_rule(strategy["name"])
    if rule.controller is not None:
        return rule.controller(strategy, groups, schedule, make_optimizer)
    return FreezeOut(groups, schedule, make_optimizer)


def realised_times(frozen_at: Sequence[int | None], total_iters: int) -> list[float]:
    """Freezing times of a run as it happened: the iteration each group froze at, as a fraction of
    training (1.0 for groups that never froze)."""
    return [1.0 if j is None else j / total_iters for j in frozen_at]
