"""Every check of a run config that needs more than its types, done before anything is loaded
or written: the rule, the optimizer, the trackers, the data (sizes and memory, without loading
it), the model (built on the meta device) and the device. What the checks find (the device,
the dataset's spec, the training-set size) is returned, so that the run uses it instead of
working it out again.

Raises :class:`~freezeout.errors.ConfigError` with one line naming the key, the bad value and
what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..config import PRECISIONS
from ..data import DatasetSpec, check_sizes, dataset_spec, iterations_per_epoch
from ..data.recipes import augment_recipe
from ..errors import ConfigError
from ..freezing.optim import check_optimizer
from ..freezing.rules import check_strategy_config
from ..models import build_model, list_models, model_hparams
from ..models.factory import check_model, model_kind
from .trackers import check_loggers


@dataclass(frozen=True)
class CheckedRun:
    """What the checks of a run config found."""

    device: torch.device | None  # None when the device was not checked (the sweep plan)
    spec: DatasetSpec  # classes, channels, image size, split sizes
    train_images: int  # images in the training split (after subset and validation hold-out)
    batch_size: int

    @property
    def iterations_per_epoch(self) -> int:
        return iterations_per_epoch(self.train_images, self.batch_size)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when present, else cpu; a CUDA device without a GPU is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={device!r} is not a device; allowed: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device} but no CUDA GPU is available; use device=cpu or device=auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device={device} but only {torch.cuda.device_count()} GPU(s) are present")
    elif dev.type != "cpu":
        raise ConfigError(f"device={device!r} is not supported; allowed: auto, cpu, cuda, cuda:N")
    return dev


def model_kwargs(cfg: DictConfig) -> dict:
    """A built-in model's hyperparameters from ``cfg.model`` (everything but its name)."""
    return {k: v for k, v in cfg.model.items() if k not in ("name", "init", "init_strict")}


def validate(cfg: DictConfig, check_device: bool = True) -> CheckedRun:
    """Check every setting before anything is loaded or written; returns what the checks found.
    ``check_device=False`` (the sweep plan, reading another machine's step times) skips the
    device (``device`` is then None)."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    check_strategy_config(cfg)
    need(0.0 < cfg.t_0 <= 1.0, f"t_0={cfg.t_0} is outside the allowed range (0, 1]")
    need(cfg.epochs >= 1, f"epochs={cfg.epochs}; need an integer >= 1")
    need(cfg.batch_size >= 1, f"batch_size={cfg.batch_size}; need an integer >= 1")
    check_optimizer(cfg.optimizer)
    need(cfg.log_every >= 1, f"log_every={cfg.log_every}; need an integer >= 1")
    check_loggers(cfg.get("logger"))
    need(0.0 < cfg.predict_time_share <= 1.0, f"predict_time_share={cfg.predict_time_share}; allowed: (0, 1]")
    need(cfg.precision in PRECISIONS, f"precision={cfg.precision!r}; allowed: {', '.join(PRECISIONS)}")
    builtin = model_kind(cfg.model) == "builtin"
    if builtin:
        need(cfg.model.name in list_models(),
             f"model={cfg.model.name!r} is unknown; allowed: {', '.join(list_models())}")
        unknown = sorted(set(model_kwargs(cfg)) - set(model_hparams(cfg.model.name)))
        need(not unknown, f"model={cfg.model.name} has no hyperparameter {', '.join(unknown)}; "
                          f"allowed: {', '.join(model_hparams(cfg.model.name))}")
    init = cfg.model.get("init")
    need(init is None or Path(str(init)).expanduser().is_file(),
         f"model.init={init!r} is not a file; give a saved state_dict or a checkpoint holding one")
    spec = dataset_spec(cfg.data)
    n_train = check_sizes(cfg.data, spec, with_test=cfg.eval_test)
    need(cfg.batch_size <= n_train,
         f"batch_size={cfg.batch_size} is larger than the {n_train} training images")
    device = resolve_device(cfg.device) if check_device else None
    need(not (device is not None and cfg.precision == "fp16" and device.type != "cuda"),
         f"precision=fp16 needs a CUDA device (device={device}); use bf16 or fp32 on the CPU")
    try:  # building on the meta device checks the architecture's hyperparameters at no cost
        if builtin:
            with torch.device("meta"):
                model = build_model(cfg.model.name, spec.num_classes, spec.in_channels, **model_kwargs(cfg))
        else:  # name, kwargs and layer groups, cheaply (see check_model)
            check_model(cfg.model, spec.num_classes, spec.in_channels, spec.image_size)
            model = None
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    need(cfg.cache_frozen is True or cfg.cache_frozen is False or cfg.cache_frozen == "auto",
         f"cache_frozen={cfg.cache_frozen!r}; allowed: true, false, auto")
    if cfg.cache_frozen:
        cache = f"cache_frozen={str(cfg.cache_frozen).lower()}"
        need(augment_recipe(cfg.data.augment) == "none", f"{cache} needs data.augment=false: with augmentation a "
             "training image's frozen-prefix output changes every epoch, so it cannot be stored")
        need(hasattr(model, "forward_from"), f"{cache} needs a model that is the chain of its layer "
                                             f"groups (densenet, wrn, vgg); model={cfg.model.name} is not")  # timm etc.
        need(cfg.cache_memory_gb > 0, f"cache_memory_gb={cfg.cache_memory_gb}; need > 0")
    return CheckedRun(device, spec, n_train, cfg.batch_size)
