"""The run's model from the config: a built-in one (``model=densenet``), or one from timm,
torchvision or the user's own code (``model=timm|torchvision|custom``) with its layer groups.

Classes, input channels and image size come from the data. Everything here raises one-line
:class:`ConfigError` for bad settings; :func:`check_model` is what ``validate`` runs.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from ..data import DatasetSpec, dataset_spec
from ..errors import ConfigError
from .adapters import ExternalModel, adapt_stem, group_model
from .init import init_weights
from .registry import build_model
from .sources import ModelBuildError, build_custom, build_timm, build_torchvision

log = logging.getLogger("freezeout")

#: ``model.kind`` of the config groups for models nobody wrote for FreezeOut.
EXTERNAL_KINDS = ("timm", "torchvision", "custom")
#: Keys of ``model=custom`` that are the harness's, not the builder's.
_OWN_KEYS = ("kind", "name", "groups", "max_groups", "init", "init_strict")


def model_kind(model_cfg: Mapping) -> str:
    """``builtin`` for the registry's models, else the ``model.kind`` of the config group."""
    return model_cfg.get("kind", "builtin")


def build_run_model(cfg: DictConfig, device: torch.device, spec: DatasetSpec | None = None) -> nn.Module:
    """The run's model with its initial weights (which depend on ``cfg.seed`` only), sized by the
    data (``spec``, the checks' finding; else worked out from ``cfg.data`` without loading it),
    grouped, on ``device`` and in the run's memory format. Every command builds its model here."""
    spec = spec if spec is not None else dataset_spec(cfg.data)
    num_classes, in_channels, image_size = spec.num_classes, spec.in_channels, tuple(spec.image_size)
    torch.manual_seed(cfg.seed)
    if model_kind(cfg.model) == "builtin":
        hparams = {k: v for k, v in cfg.model.items() if k not in ("name", "init", "init_strict")}
        model = build_model(cfg.model.name, num_classes, in_channels, **hparams)
    else:
        model = build_external(cfg.model, num_classes, in_channels, image_size)
        for note in model.notes:
            log.info("%s: %s", describe(cfg.model), note)
    init_weights(model, cfg.model)  # model.init: start from saved weights
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def build_external(model_cfg: Mapping, num_classes: int, in_channels: int, image_size: tuple[int, int],
                   pretrained: bool | None = None) -> ExternalModel:
    """A timm, torchvision or custom model wrapped with its layer groups. ``pretrained=False``
    overrides ``model.pretrained`` (validation builds no weights)."""
    check_keys(model_cfg)
    kind = model_kind(model_cfg)
    kwargs = _plain(model_cfg.get("kwargs") or {})
    notes = []
    if kind == "timm":
        use_weights = bool(model_cfg.get("pretrained", False)) if pretrained is None else pretrained
        net = build_timm(model_cfg["name"], num_classes, in_channels, use_weights, kwargs)
    elif kind == "torchvision":
        net = build_torchvision(model_cfg["name"], num_classes, kwargs)
        note = adapt_stem(net, in_channels, image_size)
        notes += [note] if note else []
    else:
        own = {k: v for k, v in _plain(model_cfg).items() if k not in _OWN_KEYS and k != "_target_"}
        net = build_custom(model_cfg["_target_"], own, num_classes, in_channels)
    return group_model(net, (1, in_channels, *image_size), _plain(model_cfg.get("groups", "auto")),
                       model_cfg.get("max_groups"), notes)


def check_keys(model_cfg: Mapping) -> None:
    """The settings an external model needs, checked before anything is built."""
    kind = model_kind(model_cfg)
    if kind not in EXTERNAL_KINDS:
        raise ConfigError(f"model.kind={kind!r} is unknown; allowed: {', '.join(EXTERNAL_KINDS)}")
    if kind == "custom":
        if _missing(model_cfg, "_target_"):
            raise ConfigError("model=custom needs model._target_=package.module.Name, a class or function that "
                              "returns an nn.Module (see examples/custom_model.py)")
    elif _missing(model_cfg, "name"):
        raise ConfigError(f"model={kind} needs model.name=<a {kind} model>, e.g. model.name=resnet18")
    kwargs = model_cfg.get("kwargs")
    if kwargs is not None and not isinstance(kwargs, (dict, DictConfig)):
        raise ConfigError(f"model.kwargs={kwargs}; need a mapping of keyword arguments, e.g. model.kwargs={{img_size:28}}")
    groups = model_cfg.get("groups", "auto")
    if isinstance(groups, str):
        if groups != "auto":
            raise ConfigError(f"model.groups={groups!r}; allowed: auto, or a list of parameter-name prefixes or "
                              "regexes in forward order, head last, e.g. model.groups=[conv1,layer1,layer2,fc]")
    elif not isinstance(groups, (list, tuple, ListConfig)) or not groups or \
            not all(isinstance(g, (str, int)) and str(g) for g in groups):
        raise ConfigError(f"model.groups={groups}; allowed: auto, or a non-empty list of parameter-name prefixes "
                          "or regexes")
    max_groups = model_cfg.get("max_groups")
    if max_groups is not None and max_groups < 2:
        raise ConfigError(f"model.max_groups={max_groups}; need >= 2 (the head is a group of its own) or null")


def check_model(model_cfg: Mapping, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
    """Validate an external model's settings by building and grouping it without weights: on the
    meta device (no memory, no compute), or for real when some op has no meta kernel."""
    check_keys(model_cfg)
    try:
        with torch.device("meta"):
            build_external(model_cfg, num_classes, in_channels, image_size, pretrained=False)
    except ModelBuildError:  # maybe only the meta device: the real build says what is wrong, if anything
        with torch.random.fork_rng(devices=[]):
            build_external(model_cfg, num_classes, in_channels, image_size, pretrained=False)


def describe(model_cfg: Mapping) -> str:
    """``resnet18 (torchvision)``, ``pkg.Net (custom)`` or the built-in name, for logs."""
    kind = model_kind(model_cfg)
    if kind == "builtin":
        return str(model_cfg["name"])
    return f"{model_cfg['_target_'] if kind == 'custom' else model_cfg['name']} ({kind})"


def _missing(model_cfg: Mapping, key: str) -> bool:
    if isinstance(model_cfg, DictConfig) and key in model_cfg and OmegaConf.is_missing(model_cfg, key):
        return True
    return not model_cfg.get(key)


def _plain(value: Any) -> Any:
    """A config node as plain Python containers (what libraries and builders expect)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
