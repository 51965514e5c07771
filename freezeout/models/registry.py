"""Model registry: models are looked up by name (``model=densenet``), as in timm."""
from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Decorator: register a builder ``f(num_classes, in_channels, **hparams)`` under ``name``."""
    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = builder
        return builder
    return wrap


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def model_hparams(name: str) -> list[str]:
    """The hyperparameter names ``build_model`` accepts for model ``name``."""
    _check_name(name)
    params = inspect.signature(_MODELS[name]).parameters
    return [p for p in params if p not in ("num_classes", "in_channels")]


def build_model(name: str, num_classes: int, in_channels: int = 3, **hparams) -> nn.Module:
    """Build registered model ``name``; unknown names and hyperparameters are rejected clearly."""
    _check_name(name)
    unknown = sorted(set(hparams) - set(model_hparams(name)))
    if unknown:
        raise ValueError(
            f"model={name} has no hyperparameter {', '.join(unknown)}; "
            f"allowed: {', '.join(model_hparams(name))}"
        )
    return _MODELS[name](num_classes=num_classes, in_channels=in_channels, **hparams)


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"model={name!r} is unknown; allowed: {', '.join(list_models())}")
