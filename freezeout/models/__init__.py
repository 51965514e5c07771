"""Models, each declaring its layer groups; look them up by name with :func:`build_model`."""
from . import densenet, vgg, wrn  # noqa: F401  (importing registers them)
from .base import GroupedModel
from .registry import build_model, list_models, model_hparams

__all__ = ["GroupedModel", "build_model", "list_models", "model_hparams"]
