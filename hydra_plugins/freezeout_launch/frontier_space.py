"""The frontier search's space: Hydra sweep overrides as Optuna distributions, and one trial's
settings drawn from them, the settings a rule does not read left out (a rule's own ``strategy.*``
options only when that rule is drawn; ``t_0`` and ``scale_lr`` only for FreezeOut's schedules).

    strategy=choice(linear,cubic,layer_freezing)   categorical
    scale_lr=choice(true,false)                    categorical
    t_0=interval(0.5,1.0)                          float (in steps of float_step)
    strategy.freeze_start=interval(0.3,0.8)        float, drawn for layer_freezing only
    strategy.interval=range(20,100,20)             int 20, 40, 60, 80
    lr=tag(log,interval(0.01,0.3))                 float, log scale

Everything else is a fixed override of every trial. Optuna is imported by the functions that
use it: Hydra imports this module at every start.
"""
# No "from __future__ import annotations": Hydra scans this package outside sys.modules.

from typing import Any, Dict, List, Optional, Tuple

from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.errors import CompactHydraException

from freezeout.errors import ConfigError

from .groups import BASELINE


class FrontierError(ConfigError, CompactHydraException):
    """A bad frontier setting: Hydra prints its one line and exits 1."""


def _key(o: Override) -> str:
    return o.get_key_element().lstrip("+~")


def split_space(overrides: List[Override]) -> Tuple[Dict[str, Any], List[str]]:
    """(search space ``{key: sweep}``, fixed overrides ``["key=value"]``) of parsed overrides."""
    space: Dict[str, Any] = {}
    fixed: List[str] = []
    for o in overrides:
        if o.is_sweep_override():
            space[_key(o)] = o.value()
        else:
            fixed.append(f"{o.get_key_element()}={o.get_value_element_as_str()}")
    if not space:
        raise FrontierError("the frontier search space is empty: give hydra.sweeper.params or sweep overrides, "
                            "e.g. strategy=choice(linear,cubic) t_0=interval(0.5,1.0)")
    if "seed" in space or any(f.split("=", 1)[0].lstrip("+~") == "seed" for f in fixed):
        raise FrontierError("seed is set by hydra.sweeper.seeds (every trial runs every seed), not by an override")
    choices = space.get("strategy")
    if isinstance(choices, ChoiceSweep) and BASELINE in [str(c) for c in choices.list]:
        raise FrontierError("strategy=none in the frontier search space: the baseline is every trial's reference, "
                            "not a trial")
    for key, sweep in space.items():
        if isinstance(sweep, ChoiceSweep) and not sweep.list:
            raise FrontierError(f"{key}: an empty choice()")
        if isinstance(sweep, IntervalSweep) and not (sweep.start < sweep.end):
            raise FrontierError(f"{key}=interval({sweep.start},{sweep.end}): the start must lie below the end")
    return space, fixed


def fixed_strategy(fixed: List[str]) -> Optional[str]:
    for f in fixed:
        key, _, value = f.partition("=")
        if key.lstrip("+~") in ("strategy", "strategy.name"):
            return value
    return None


def applies(key: str, strategy: Optional[str]) -> bool:
    """Whether a rule reads ``key``: its own ``strategy.*`` options, and the top-level settings it
    does not declare unread. Unknown strategies read everything (their run then says why not)."""
    from freezeout.freezing.rules import get_rule, rule_names

    if key == "strategy" or strategy not in rule_names():
        return True
    rule = get_rule(strategy)
    if key.startswith("strategy."):
        return key.split(".", 1)[1] in rule.options
    return key not in rule.unread


def suggest(trial: Any, key: str, sweep: Any, float_step: Optional[float]) -> Any:
    """One value for ``key`` from its Hydra sweep, through Optuna's ``trial.suggest_*``."""
    if isinstance(sweep, ChoiceSweep):
        return trial.suggest_categorical(key, [_plain(v) for v in sweep.list])
    if isinstance(sweep, RangeSweep):
        values = list(sweep.range())
        return trial.suggest_categorical(key, [_plain(v) for v in values])
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return trial.suggest_int(key, sweep.start, sweep.end, log=log)
        step = None if log or not float_step else float_step
        return trial.suggest_float(key, float(sweep.start), float(sweep.end), log=log, step=step)
    raise FrontierError(f"{key}: sweep type {type(sweep).__name__} is not supported (choice, range, interval)")


def _plain(v: Any) -> Any:
    """A choice as Optuna stores it: None, bool, int, float or str."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def draw(trial: Any, space: Dict[str, Any], fixed: List[str], float_step: Optional[float]) -> Dict[str, Any]:
    """One trial's settings: the strategy first, then every other key its rule reads."""
    params: Dict[str, Any] = {}
    strategy = fixed_strategy(fixed)
    if "strategy" in space:
        strategy = params["strategy"] = suggest(trial, "strategy", space["strategy"], float_step)
    for key, sweep in space.items():
        if key != "strategy" and applies(key, strategy):
            params[key] = suggest(trial, key, sweep, float_step)
    return params


def override_text(key: str, value: Any) -> str:
    """``key=value`` as Hydra parses it back: true/false/null, floats without float noise."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = f"{value:.10g}"
    else:
        text = str(value)
    return f"{key}={text}"
