"""The config schema (registered in Hydra's ConfigStore) and the range checks types cannot express.

Types are enforced by Hydra when composing (``t_0=abc`` fails there, naming the key); ranges and
names are checked by :func:`validate` before any data is loaded or any file is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from .data import check_split_sizes, dataset_spec
from .errors import ConfigError
from .models import build_model, list_models, model_hparams
from .models.factory import check_model, data_dims, model_kind
from .schedule import STRATEGIES

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class DenseNetConfig:
    name: str = "densenet"
    depth: int = 76  # L: (L - 4) / 6 bottlenecks per dense block
    growth_rate: int = 12  # k: channels each bottleneck adds
    compression: float = 0.5  # channel factor at each transition (the "C" of DenseNet-BC)


@dataclass
class WRNConfig:
    name: str = "wrn"
    depth: int = 28
    widen_factor: int = 10
    dropout: float = 0.0


@dataclass
class VGGConfig:
    name: str = "vgg"
    depth: int = 16  # 11, 13, 16 or 19
    width: int = 64  # channels of the first block (64 in the original VGG)


@dataclass
class TimmModelConfig:
    kind: str = "timm"
    name: str = MISSING  # any timm model, e.g. resnet18, vit_tiny_patch16_224, convnext_atto
    pretrained: bool = False  # load timm's pretrained weights (needs network or a filled HF cache)
    # More create_model arguments, e.g. {img_size: 28}. Any, not Dict: `model.kwargs={...}` replaces
    # it then, where a typed dict in a struct config would refuse new keys.
    kwargs: Any = None
    groups: Any = "auto"  # auto | [prefix or regex of parameter names, ...] in forward order, head last
    max_groups: Optional[int] = None  # merge neighbouring groups (never the head) to about equal FLOPs


@dataclass
class TorchvisionModelConfig:
    kind: str = "torchvision"
    name: str = MISSING  # a torchvision classification model, e.g. resnet18, mobilenet_v3_small
    kwargs: Any = None  # more get_model arguments, e.g. {dropout: 0.3}
    groups: Any = "auto"
    max_groups: Optional[int] = None


@dataclass
class CustomModelConfig:
    kind: str = "custom"
    name: str = "custom"
    _target_: str = MISSING  # package.module.Name returning an nn.Module; its arguments: +model.KEY=VALUE
    groups: Any = "auto"
    max_groups: Optional[int] = None


@dataclass
class StrategyConfig:
    name: str = MISSING  # linear | squared | cubic | none


@dataclass
class DataConfig:
    name: str = MISSING  # cifar10 | cifar100 | fashion_mnist
    root: str = "data"  # where datasets live / are downloaded (relative to the launch directory)
    subset: Optional[int] = None  # train on the first N training images only (None: all)
    val_size: int = 5000  # the last val_size training images are the validation split
    augment: bool = False  # pad-4 random crop + horizontal flip, on the device
    download: bool = True  # try torchvision's download when the data is not in root


@dataclass
class Config:
    model: Any = MISSING
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    t_0: float = 0.8  # fraction of training after which the first group freezes, before scaling
    scale_lr: bool = True  # start group i at lr / t_i
    const_time: bool = False  # train T / (1 - predicted speedup) iterations: the baseline's budget
    epochs: int = 100
    batch_size: int = 50  # images per step
    lr: float = 0.1  # base learning rate
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"  # auto (cuda when present, else cpu) | cpu | cuda | cuda:N
    eval_test: bool = False  # also evaluate the test split at the end
    predict_time: bool = False  # measure per-stage step times for the "time" speedup model
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 on CUDA only)
    channels_last: bool = False  # NHWC memory format (faster convs on recent GPUs)
    compile: bool = False  # torch.compile the model
    log_every: int = 50  # iterations between host syncs (progress bar, divergence check)
    checkpoint: bool = True  # save a checkpoint after every epoch, for resume
    progress: bool = True  # show a progress bar
    debug: bool = False  # show full tracebacks instead of one-line errors


def register_configs() -> None:
    """Register the schema and the per-model schemas with Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="freezeout_schema", node=Config)
    # In a group of their own, so that `model=` lists only the real choices.
    cs.store(group="schema/model", name="densenet", node=DenseNetConfig)
    cs.store(group="schema/model", name="wrn", node=WRNConfig)
    cs.store(group="schema/model", name="vgg", node=VGGConfig)
    cs.store(group="schema/model", name="timm", node=TimmModelConfig)
    cs.store(group="schema/model", name="torchvision", node=TorchvisionModelConfig)
    cs.store(group="schema/model", name="custom", node=CustomModelConfig)


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
    """The model's hyperparameters from ``cfg.model`` (everything but its name)."""
    return {k: v for k, v in cfg.model.items() if k != "name"}


def validate(cfg: DictConfig) -> torch.device:
    """Check every setting before anything is loaded or written; returns the resolved device.

    Raises :class:`ConfigError` with a message naming the key, the bad value and what is allowed.
    """
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    need(cfg.strategy.name in STRATEGIES,
         f"strategy={cfg.strategy.name!r} is unknown; allowed: {', '.join(STRATEGIES)}")
    need(0.0 < cfg.t_0 <= 1.0, f"t_0={cfg.t_0} is outside the allowed range (0, 1]")
    need(cfg.epochs >= 1, f"epochs={cfg.epochs}; need an integer >= 1")
    need(cfg.batch_size >= 1, f"batch_size={cfg.batch_size}; need an integer >= 1")
    need(cfg.lr > 0, f"lr={cfg.lr}; need a learning rate > 0")
    need(0.0 <= cfg.momentum < 1.0, f"momentum={cfg.momentum}; allowed: [0, 1)")
    need(cfg.weight_decay >= 0, f"weight_decay={cfg.weight_decay}; need >= 0")
    need(cfg.log_every >= 1, f"log_every={cfg.log_every}; need an integer >= 1")
    need(cfg.precision in PRECISIONS, f"precision={cfg.precision!r}; allowed: {', '.join(PRECISIONS)}")
    builtin = model_kind(cfg.model) == "builtin"
    if builtin:
        need(cfg.model.name in list_models(),
             f"model={cfg.model.name!r} is unknown; allowed: {', '.join(list_models())}")
        unknown = sorted(set(model_kwargs(cfg)) - set(model_hparams(cfg.model.name)))
        need(not unknown, f"model={cfg.model.name} has no hyperparameter {', '.join(unknown)}; "
                          f"allowed: {', '.join(model_hparams(cfg.model.name))}")
    spec = dataset_spec(cfg.data.name)
    n_train = check_split_sizes(cfg.data.name, cfg.data.val_size, cfg.data.subset)
    need(cfg.batch_size <= n_train,
         f"batch_size={cfg.batch_size} is larger than the {n_train} training images")
    device = resolve_device(cfg.device)
    need(not (cfg.precision == "fp16" and device.type != "cuda"),
         f"precision=fp16 needs a CUDA device (device={device}); use bf16 or fp32 on the CPU")
    try:  # building on the meta device checks the architecture's hyperparameters at no cost
        if builtin:
            with torch.device("meta"):
                build_model(cfg.model.name, spec.num_classes, spec.in_channels, **model_kwargs(cfg))
        else:  # name, kwargs and layer groups, cheaply (see check_model)
            check_model(cfg.model, *data_dims(cfg.data.name))
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    return device
