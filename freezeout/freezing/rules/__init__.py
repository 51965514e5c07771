"""Freezing rules by name (``strategy=NAME``), each declared once in a module of its own:
FreezeOut's (``linear``, ``squared``, ``cubic``; ``none`` is the baseline) and its rivals
``layer_freezing`` and ``autofreeze``. See :mod:`.registry` for what a rule declares."""
from . import autofreeze, freezeout_rules, layer_freezing  # noqa: F401  (importing registers them)
from .autofreeze import AutoFreeze, autofreeze_count, percentile, relative_change
from .layer_freezing import layer_freezing_count, layer_freezing_times
from .registry import (
                       Rule,
                       check_strategy_config,
                       get_rule,
                       make_controller,
                       realised_times,
                       rule_names,
                       run_schedule,
                       strategy_schedule,
)

__all__ = ["AutoFreeze", "Rule", "autofreeze_count", "check_strategy_config", "get_rule", "layer_freezing_count",
           "layer_freezing_times", "make_controller", "percentile", "realised_times", "relative_change",
           "rule_names", "run_schedule", "strategy_schedule"]
