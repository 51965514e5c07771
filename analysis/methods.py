"""What a run's *method* is: its strategy name plus the parameters that strategy reads.

A method is what the analysis groups, sorts, labels and styles by, so FreezeOut and its peers
(``layer_freezing``, ``autofreeze``, any future ``strategy=``) sit in one table and one plot:

- the ``strategy.*`` config keys other than ``name`` (``freeze_start``, ``interval``, ...);
- ``t_0`` and ``scale_lr`` for the rules that read them (FreezeOut's own schedules): the peers
  ignore them, though their configs still carry the defaults;
- ``const_time`` and ``cache_frozen`` when true.

The baseline has no parameters: every baseline of a setting is the same method.

What a strategy *is* (the baseline or not, which of FreezeOut's settings it reads, its place in
the reports' order) is the rule's own declaration (freezeout/freezing/rules/), which each run
records in its ``summary.json`` (``rule``): :func:`rule_facts` reads it there, so a rule added
outside this package is analysed like the built-in ones, with no list here to extend.
"""
from __future__ import annotations

import json
import math
from typing import Any

CACHE_FROZEN = "cache_frozen"  # a speed option: part of the method, never of the setting

#: A rule's facts when its runs recorded none: a rival that reads none of FreezeOut's settings,
#: listed after the known ones.
UNKNOWN_RULE = {"baseline": False, "freezeout": False, "adaptive": False, "reads": [], "options": [],
                "order": None}
_SCHEDULE = {**UNKNOWN_RULE, "freezeout": True, "reads": ["t_0", "scale_lr", "const_time"]}
#: What a summary.json written before runs recorded their rule's facts meant by its strategy
#: (the rules of that time, as they were declared then): the fallback for those summaries only.
#: A rule declared since records its own facts; never extend this table.
RECORDED_BEFORE = {
    "none": {**UNKNOWN_RULE, "baseline": True, "freezeout": True, "order": 0},
    "linear": {**_SCHEDULE, "order": 1}, "squared": {**_SCHEDULE, "order": 2}, "cubic": {**_SCHEDULE, "order": 3},
    "layer_freezing": {**UNKNOWN_RULE, "options": ["freeze_start", "freeze_level"], "order": 4},
    "autofreeze": {**UNKNOWN_RULE, "adaptive": True, "options": ["interval", "percentile", "max_per_check"],
                   "order": 5},
}
#: Facts by strategy name, as the runs read so far recorded them (functions given a name alone,
#: such as the plots' styles, look them up here).
_SEEN: dict[str, dict] = {}


def rule_facts(strategy: str | None, recorded: Any = None) -> dict[str, Any]:
    """The facts of ``strategy``'s rule: ``recorded`` (a summary's ``rule``) when there are some,
    else those a run of it recorded before, else :data:`RECORDED_BEFORE`'s, else
    :data:`UNKNOWN_RULE`. Keys: baseline, freezeout (one of FreezeOut's own rules), adaptive,
    reads (FreezeOut's top-level settings it reads), options (its ``strategy.*`` keys), order."""
    if isinstance(recorded, dict):
        facts = {**UNKNOWN_RULE, **recorded}
        if strategy is not None:
            _SEEN[strategy] = facts
        return facts
    return _SEEN.get(strategy) or RECORDED_BEFORE.get(strategy) or UNKNOWN_RULE  # type: ignore[arg-type]


def facts_of(r: dict | str | None) -> dict[str, Any]:
    """:func:`rule_facts` of a run record (its ``rule``, else its strategy's) or a strategy name."""
    if isinstance(r, dict):
        return rule_facts(r.get("strategy"), r.get("rule"))
    return rule_facts(r)


def is_baseline(r: dict | str | None) -> bool:
    """Whether a run (or a strategy) is the baseline the others are compared with."""
    return bool(facts_of(r)["baseline"])


def reads_schedule(r: dict | str | None) -> bool:
    """Whether ``t_0`` and ``scale_lr`` shape a run (FreezeOut's own schedules, not the baseline)."""
    return "t_0" in facts_of(r)["reads"]


def is_freezeout_rule(r: dict | str | None) -> bool:
    """One of FreezeOut's own rules, the baseline included (their runs record t_0 and scale_lr)."""
    return bool(facts_of(r)["freezeout"])


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
    if is_baseline(r):
        return {}
    params: dict[str, Any] = {}
    if reads_schedule(r):
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
    if is_baseline(r):
        return f"baseline ({strategy})"
    params = ", ".join(param_text(k, v) for k, v in method_params(r).items())
    return f"{strategy} ({params})" if params else str(strategy)


def strategy_sort_key(strategy: str | None) -> tuple:
    """Strategies in their rules' order (the registry's: baseline, linear, squared, cubic, the
    peers, rules added since), then strategies without facts, by name."""
    order = rule_facts(strategy)["order"]
    return (order if isinstance(order, int) else math.inf), str(strategy)


def method_sort_key(r: dict) -> tuple:
    """Methods in reading order: by strategy, then parameters (numbers before text)."""
    def value(v: Any) -> tuple:
        return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))
    params = method_params(r)
    order = sorted(params, key=lambda k: k != "scale_lr")  # scale_lr off, then on, as blocks
    return strategy_sort_key(r.get("strategy")) + tuple((k,) + value(params[k]) for k in order)
