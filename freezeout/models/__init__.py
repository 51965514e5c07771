"""Models, each declaring its layer groups; look them up by name with :func:`build_model`."""
from . import densenet, vgg, wrn  # noqa: F401  (importing registers them)
from .base import GroupedModel, LayerGroup
from .registry import build_model, list_models, model_hparams

__all__ = ["GroupedModel", "LayerGroup", "build_model", "list_models", "model_hparams"]
