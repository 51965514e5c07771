"""The registry of freezing rules: one :class:`Rule` per name, declared once in its own module
(:mod:`.freezeout_rules`, :mod:`.layer_freezing`, :mod:`.autofreeze`), with everything the
harness needs to know about it: its config schema (a dataclass holding its options' defaults),
how it builds its schedule and its controller, whether it decides during the run, which top-level
settings it does not read, and its checks.

Adding a rule: one module that defines its schema and calls :func:`register`, and one yaml in
``conf/strategy/`` that selects the schema (docs/freezing-rules.md). Registering stores the schema
in Hydra's ConfigStore as ``schema/strategy/NAME``; the rule's options are the schema's fields.
Torch-free at import (a rule's controller class is imported when a run builds it), so that the
config schema can be registered without paying for torch.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from ...errors import ConfigError
from ..schedule import FreezeOutSettings, Schedule

#: FreezeOut's own top-level settings and their defaults (read from :class:`FreezeOutSettings`, the
#: schema's): a rule either reads them or must be given their defaults.
SCHEDULE_KEYS = {f.name: f.default for f in dataclasses.fields(FreezeOutSettings)}
#: Settings of the frozen-prefix cache: they mean nothing for a rule that freezes nothing.
CACHE_KEYS = ("cache_frozen", "cache_memory_gb", "cache_host")
#: A package name under which rules outside freezeout are found: every module of any
#: ``freezeout_rules`` package (or namespace package) on ``sys.path`` is imported by
#: :func:`load_rule_plugins` (the launch folder is on it for ``freezeout train``).
PLUGIN_PACKAGE = "freezeout_rules"


@dataclass
class FreezeOutStrategy:
    """The schema of FreezeOut's own rules and of the baseline: no options of their own (``t_0``,
    ``scale_lr`` and ``const_time`` are top-level settings, :class:`FreezeOutSettings`)."""

    name: str = MISSING  # linear | squared | cubic | none: set to the rule's own name when it registers


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
    #: Its config schema: a dataclass with a ``name`` field and one field per option
    #: (``strategy.KEY``), each with its default (omegaconf's ``MISSING`` where there is none).
    schema: type = FreezeOutStrategy
    #: ``controller(strategy_cfg, groups, schedule, make_optimizer)``, or ``"module:function"``
    #: naming it (imported when a run builds its controller, so that declaring the rule costs no
    #: torch); None: the plain controller.
    controller: Callable[..., Any] | str | None = None
    adaptive: bool = False  # its freezing times are known only once it has run
    at_epoch_ends: bool = False  # it decides at epoch ends (a loop must say how many steps an epoch has)
    freezeout: bool = False  # one of FreezeOut's own schedules (the paper's estimate applies)
    baseline: bool = False  # the reference every other rule is compared with (nothing frozen)
    #: Top-level settings it does not read. ``refuses_unread``: setting one of SCHEDULE_KEYS to
    #: anything but its default is an error (else the sweeper just drops them from its jobs).
    unread: tuple[str, ...] = ()
    refuses_unread: bool = False
    check: Callable[[Mapping[str, Any]], None] = field(default=lambda strategy: None)

    @property
    def options(self) -> tuple[str, ...]:
        """Its own settings, ``strategy.KEY``: the schema's fields but ``name``."""
        return tuple(f.name for f in dataclasses.fields(self.schema) if f.name != "name")

    def defaults(self) -> dict[str, Any]:
        """``{"name": NAME, option: default, ...}`` from the schema (``"???"`` where none)."""
        return dataclasses.asdict(self.schema(name=self.name))

    def facts(self) -> dict[str, Any]:
        """What a run of this rule is, for its ``summary.json``: the analysis reads these there
        rather than a copy of the registry. ``reads``: FreezeOut's top-level settings it reads;
        ``order``: its place in the registry (reports list rules in this order)."""
        return {"baseline": self.baseline, "freezeout": self.freezeout, "adaptive": self.adaptive,
                "reads": [k for k in SCHEDULE_KEYS if k not in self.unread], "options": list(self.options),
                "order": list(_RULES).index(self.name) if self.name in _RULES else len(_RULES)}


_RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Declare ``rule`` under its name (once), and store its schema in Hydra's ConfigStore as
    ``schema/strategy/NAME`` (its name filled in), which ``conf/strategy/NAME.yaml`` extends."""
    if rule.name in _RULES:
        raise ValueError(f"freezing rule {rule.name!r} is declared twice")
    if not dataclasses.is_dataclass(rule.schema) or "name" not in {f.name for f in dataclasses.fields(rule.schema)}:
        raise ValueError(f"freezing rule {rule.name!r}: its schema must be a dataclass with a `name` field")
    _RULES[rule.name] = rule
    ConfigStore.instance().store(group="schema/strategy", name=rule.name, node=rule.schema(name=rule.name))
    return rule


def load_rule_plugins() -> None:
    """Import every module of the ``freezeout_rules`` packages on ``sys.path`` (rules declared
    outside freezeout: each registers itself). Modules imported before are not run again."""
    importlib.invalidate_caches()  # modules written since the last look
    try:
        package = importlib.import_module(PLUGIN_PACKAGE)
    except ModuleNotFoundError as e:
        if e.name != PLUGIN_PACKAGE:
            raise
        return
    for module in sorted(info.name for info in pkgutil.iter_modules(package.__path__)):
        importlib.import_module(f"{PLUGIN_PACKAGE}.{module}")


def rule_names() -> tuple[str, ...]:
    """Every registered rule's name, in declaration order."""
    return tuple(_RULES)


def get_rule(name: str) -> Rule:
    """The rule called ``name`` (looked for among the plugins too); a ConfigError naming the
    allowed names otherwise."""
    if name not in _RULES:
        load_rule_plugins()
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
    if isinstance(rule.controller, str):
        module, _, function = rule.controller.partition(":")
        return getattr(importlib.import_module(module), function)(strategy, groups, schedule, make_optimizer)
    if rule.controller is not None:
        return rule.controller(strategy, groups, schedule, make_optimizer)
    from ..controller import FreezeOut  # torch: imported when a run builds its controller

    return FreezeOut(groups, schedule, make_optimizer)


def realised_times(frozen_at: Sequence[int | None], total_iters: int) -> list[float]:
    """Freezing times of a run as it happened: the iteration each group froze at, as a fraction of
    training (1.0 for groups that never froze)."""
    return [1.0 if j is None else j / total_iters for j in frozen_at]
