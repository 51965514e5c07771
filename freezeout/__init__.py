"""FreezeOut: anneal each layer group's learning rate to zero on its own schedule, then freeze it.

The top-level names load lazily, so ``freezeout.metrics`` and ``freezeout.schedule`` stay
importable without torch (the analysis package relies on that).
"""
from importlib import import_module

_EXPORTS = {
    "FreezeOut": "freezer", "freeze_module": "freezer", "layer_times": "schedule",
    "learning_rate": "schedule", "calc_speedup": "speedup", "flops_speedup": "speedup",
    "paper_speedup": "speedup", "train": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'freezeout' has no attribute {name!r}")
