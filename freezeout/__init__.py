"""FreezeOut: anneal each layer group's learning rate to zero on its own schedule, then freeze it.

The public names below load lazily, so ``import freezeout`` is cheap and the torch-free parts
(``freezeout.rundir``, ``freezeout.freezing.schedule``) stay importable without torch (the
analysis package relies on that).
"""
from importlib import import_module

_EXPORTS = {
    "FreezeController": "integrations.controller", "FreezeOut": "freezing.controller", "freeze_module": "freezing.controller",
    "layer_times": "freezing.schedule", "learning_rate": "freezing.schedule", "Schedule": "freezing.schedule",
    "calc_speedup": "speedup.timemodel", "flops_speedup": "speedup.formulas", "paper_speedup": "speedup.formulas",
    "time_speedup": "speedup.formulas", "group_costs": "models.flops", "train": "training.trainer",
    "ConfigError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'freezeout' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
