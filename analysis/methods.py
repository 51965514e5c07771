"""What a run's *method* is: its strategy name plus the parameters that strategy reads.

A method is what the analysis groups, sorts, labels and styles by, so FreezeOut and its peers
(``layer_freezing``, ``autofreeze``, any future ``strategy=``) sit in one table and one plot:

- the ``strategy.*`` config keys other than ``name`` (``freeze_start``, ``interval``, ...);
- ``t_0`` and ``scale_lr`` for FreezeOut's own schedules (linear, squared, cubic) only: the peers
  ignore them, though their configs still carry the defaults;
- ``const_time`` and ``cache_frozen`` when true.

The baseline (``none``) has no parameters: every baseline of a setting is the same method.
"""
from __future__ import annotations

import json
import math
from typing import Any

BASELINE = "none"
SCHEDULES = ("linear", "squared", "cubic")  # FreezeOut's rules, the ones t_0 and scale_lr shape
STRATEGY_ORDER = {BASELINE: 0, "linear": 1, "squared": 2, "cubic": 3, "layer_freezing": 4,
                  "autofreeze": 5}
CACHE_FROZEN = "cache_frozen"  # a speed option: part of the method, never of the setting


def _plain(v: Any) -> Any:
    """A parameter value as compared and printed: ``1.0`` is ``1``."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def strategy_params(config: dict | None) -> dict[str, Any]:
    """The ``strategy.*`` settings of a config other than ``name`` (and ``cache_frozen``)."""
    strategy = config.get("strategy") if isinstance(config, dict) else None
    if not isinstance(strategy, dict):
        return {}
    return {k: _plain(v) for k, v in strategy.items() if k not in ("name", CACHE_FROZEN)}


def cache_frozen(config: dict | None) -> bool | str:
    """Whether the config turns on ``cache_frozen`` (top level, or under ``strategy``): True,
    False, or ``"auto"`` (the store read only at the stages where it pays), a method of its own."""
    if not isinstance(config, dict):
        return False
    strategy = config.get("strategy")
    nested = strategy.get(CACHE_FROZEN) if isinstance(strategy, dict) else None
    value = config.get(CACHE_FROZEN) or nested
    return "auto" if value == "auto" else bool(value)


def _known(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def method_params(r: dict) -> dict[str, Any]:
    """The parameters that make a run's (or group's) method, in display order."""
    strategy = r.get("strategy")
    if strategy == BASELINE:
        return {}
    params: dict[str, Any] = {}
    if strategy in SCHEDULES:
        if _known(r.get("t_0")):
            params["t_0"] = _plain(r["t_0"])
        if r.get("scale_lr") is not None:
            params["scale_lr"] = bool(r["scale_lr"])
    params.update(r.get("strategy_params") or {})
    if r.get("const_time"):
        params["const_time"] = True
    if r.get(CACHE_FROZEN):
        params[CACHE_FROZEN] = "auto" if r[CACHE_FROZEN] == "auto" else True
    return params


def method_key(r: dict) -> str:
    """A hashable identity of the method: equal exactly when the methods are the same."""
    return json.dumps([r.get("strategy"), sorted(method_params(r).items())], default=str)


def param_text(key: str, value: Any) -> str:
    """``t₀=0.5``, ``scale_lr on``, ``const_time``, ``freeze_start=0.5``."""
    if key == "t_0":
        return f"t₀={value:g}"
    if key == "scale_lr":
        return f"scale_lr {'on' if value else 'off'}"
    if value is True and key in ("const_time", CACHE_FROZEN):
        return key
    if isinstance(value, float):
        return f"{key}={value:g}"
    return f"{key}={value}"


def method_label(r: dict) -> str:
    """``"cubic (t₀=0.5, scale_lr on)"``, ``"layer_freezing (freeze_start=0.5, freeze_level=1)"``,
    ``"baseline (none)"``: the one label tables and plots use."""
    strategy = r.get("strategy")
    if strategy == BASELINE:
        return "baseline (none)"
    params = ", ".join(param_text(k, v) for k, v in method_params(r).items())
    return f"{strategy} ({params})" if params else str(strategy)


def strategy_sort_key(strategy: str | None) -> tuple:
    """Baseline, linear, squared, cubic, the peers, then other strategies by name."""
    return STRATEGY_ORDER.get(strategy, 9), str(strategy)


def method_sort_key(r: dict) -> tuple:
    """Methods in reading order: by strategy, then parameters (numbers before text)."""
    def value(v: Any) -> tuple:
        return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))
    params = method_params(r)
    order = sorted(params, key=lambda k: k != "scale_lr")  # scale_lr off, then on, as blocks
    return strategy_sort_key(r.get("strategy")) + tuple((k,) + value(params[k]) for k in order)
