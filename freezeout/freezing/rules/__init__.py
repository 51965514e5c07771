"""Freezing rules by name (``strategy=NAME``), each declared once in a module of its own:
FreezeOut's (``linear``, ``squared``, ``cubic``; ``none`` is the baseline) and its rivals
``layer_freezing`` and ``autofreeze``; rules outside freezeout are found in ``freezeout_rules``
packages (:func:`load_rule_plugins`). See :mod:`.registry` for what a rule declares.

Torch-free at import: the config schema registers every rule's schema from here.
"""
# The import order is the registry's, which reports and sweeps list rules in: the baseline first.
from . import freezeout_rules, layer_freezing, autofreeze  # noqa: F401,I001  (importing registers them)
from .autofreeze import AutoFreezeConfig, autofreeze_count, percentile, relative_change
from .layer_freezing import LayerFreezingConfig, layer_freezing_count, layer_freezing_times
from .registry import (
                       FreezeOutStrategy,
                       Rule,
                       check_strategy_config,
                       get_rule,
                       load_rule_plugins,
                       make_controller,
                       realised_times,
                       register,
                       rule_names,
                       run_schedule,
                       strategy_schedule,
)

__all__ = ["AutoFreeze", "AutoFreezeConfig", "FreezeOutStrategy", "LayerFreezingConfig", "Rule", "autofreeze_count",
           "check_strategy_config", "get_rule", "layer_freezing_count", "layer_freezing_times", "load_rule_plugins",
           "make_controller", "percentile", "realised_times", "register", "relative_change", "rule_names",
           "run_schedule", "strategy_schedule"]


def __getattr__(name: str):
    if name == "AutoFreeze":  # autofreeze's controller, imported on first use (it needs torch)
        from .autofreeze_controller import AutoFreeze
        return AutoFreeze
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
