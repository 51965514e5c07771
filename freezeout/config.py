"""The config schema (registered in Hydra's ConfigStore) and the range checks types cannot express.

Types are enforced by Hydra when composing (``t_0=abc`` fails there, naming the key); ranges and
names are checked by :func:`validate` before any data is loaded or any file is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from .data import check_sizes, dataset_spec
from .errors import ConfigError
from .freezing.optim import check_optimizer
from .freezing.rules import PEERS, STRATEGIES
from .models import build_model, list_models, model_hparams
from .models.factory import check_model, model_kind
from .rundir.identity import NON_SEMANTIC_KEYS
from .training.trackers import check_loggers, override_keys

PRECISIONS = ("fp32", "bf16", "fp16")

#: The installed package; in a checkout, the repository holds conf/ and sweeps/ beside it.
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def config_root() -> Path:
    """The folder holding ``conf/`` and ``sweeps/``: inside the installed package (a wheel ships
    them there), else the checkout this package runs from."""
    return PACKAGE_DIR if (PACKAGE_DIR / "conf").is_dir() else SOURCE_ROOT


def config_dir() -> Path:
    """The shipped configs (``conf/``), the primary config source of every command."""
    return config_root() / "conf"


def use_shipped_sweeps() -> None:
    """Make ``sweeps/`` a config group (conf/config.yaml's search path reads FREEZEOUT_ROOT)."""
    os.environ.setdefault("FREEZEOUT_ROOT", str(config_root()))


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
class SGDConfig:
    name: str = "sgd"
    lr: float = 0.1  # base learning rate of the schedule (group i starts at lr / t_i with scale_lr)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4  # L2 on every parameter, as in the paper's code


@dataclass
class AdamWConfig:
    name: str = "adamw"
    lr: float = 1e-3  # base learning rate of the schedule, as for SGD
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.05  # decoupled (AdamW)


@dataclass
class StrategyConfig:
    name: str = MISSING  # linear | squared | cubic | none (FreezeOut's schedule, set by t_0, scale_lr)


@dataclass
class LayerFreezingConfig:
    name: str = "layer_freezing"
    freeze_start: float = 0.5  # fraction of training before the first group freezes, in [0, 1)
    freeze_level: float = 1.0  # fraction of the non-head groups frozen by the end, in (0, 1]


@dataclass
class AutoFreezeConfig:
    name: str = "autofreeze"
    interval: int = 50  # iterations between checks of the gradient norms
    percentile: float = 50.0  # groups whose norm change is below this percentile may freeze
    max_per_check: int = 1  # groups frozen at one check, at most


@dataclass
class DataConfig:
    """Every data option, for every source (freezeout/data/); unused ones are ignored."""
    # builtin (name: cifar10 | cifar100 | fashion_mnist) | image_folder | torchvision
    source: str = "builtin"
    # builtin: the dataset; torchvision: a class of torchvision.datasets (MNIST, SVHN...); image_folder: a
    # label for summaries and analysis (name two folders differently: data.root does not tell runs apart)
    name: str = MISSING
    root: str = "data"  # where datasets live / are downloaded (relative to the launch directory)
    subset: Optional[int] = None  # train on the first N training images only (None: all)
    # images held out of the training split for validation: builtin, the last val_size; image_folder and
    # torchvision, the last val_size of a fixed pseudo-random order; image_folder with a val/ folder: unused
    val_size: int = 5000
    augment: bool = False  # pad-4 random crop (padded black) + horizontal flip, on the device
    download: bool = True  # try torchvision's download when the data is not in root
    image_size: Optional[Any] = None  # resize to N x N or [H, W] pixels (image_folder, torchvision); None: as stored
    channels: Optional[int] = None  # 1 (grey) or 3 (RGB) (image_folder, torchvision); None: as the first image
    kwargs: Dict[str, Any] = field(default_factory=dict)  # extra constructor arguments (torchvision)
    max_memory_gb: float = 8.0  # refuse data whose float32 tensors, all splits, exceed this (GB = 1e9 bytes)


@dataclass
class Config:
    model: Any = MISSING
    optimizer: Any = MISSING
    strategy: Any = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    t_0: float = 0.8  # fraction of training after which the first group freezes, before scaling
    scale_lr: bool = True  # start group i at lr / t_i
    const_time: bool = False  # train T / (1 - predicted speedup) iterations: the baseline's budget
    epochs: int = 100
    batch_size: int = 50  # images per step
    seed: int = 0
    device: str = "auto"  # auto (cuda when present, else cpu) | cpu | cuda | cuda:N
    eval_test: bool = False  # also evaluate the test split at the end
    predict_time: bool = False  # measure per-stage step times for the "time" speedup model
    predict_time_share: float = 0.1  # the time model may cost at most this share of the run's steps
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 on CUDA only)
    channels_last: bool = False  # NHWC memory format (faster convs on recent GPUs)
    compile: bool = False  # torch.compile the model
    cache_frozen: bool = False  # train from stored outputs of the frozen prefix (needs data.augment=false)
    cache_memory_gb: float = 4.0  # the most the cache's store may take, GB
    cache_host: bool = False  # keep the store in pinned host memory instead of on the device
    sync_bn: bool = False  # several processes: SyncBatchNorm (statistics over all of them; CUDA only)
    log_every: int = 50  # iterations between host syncs (progress bar, divergence check)
    checkpoint: bool = True  # save a checkpoint after every epoch, for resume
    progress: bool = True  # show a progress bar
    debug: bool = False  # show full tracebacks instead of one-line errors
    # The enabled trackers, each added by its option of the logger group (conf/logger/, one file per logger
    # with its settings): logger=[tensorboard,mlflow,csv]. Read by freezeout/loggers.py.
    logger: Dict[str, Any] = field(default_factory=dict)


def register_configs() -> None:
    """Register the schema, the per-model and per-optimizer schemas with Hydra's ConfigStore,
    and the ``freezeout.non_semantic_keys`` resolver that conf/config.yaml names its run
    directories with. Call it before composing a config."""
    if not OmegaConf.has_resolver("freezeout.non_semantic_keys"):
        # Hydra's exclude_keys match whole override keys: logger.mlflow.tracking_uri=... too
        OmegaConf.register_new_resolver("freezeout.non_semantic_keys", lambda: [*NON_SEMANTIC_KEYS, *override_keys()])
    cs = ConfigStore.instance()
    cs.store(name="freezeout_schema", node=Config)
    # In a group of their own, so that `model=` lists only the real choices.
    cs.store(group="schema/model", name="densenet", node=DenseNetConfig)
    cs.store(group="schema/model", name="wrn", node=WRNConfig)
    cs.store(group="schema/model", name="vgg", node=VGGConfig)
    cs.store(group="schema/model", name="timm", node=TimmModelConfig)
    cs.store(group="schema/model", name="torchvision", node=TorchvisionModelConfig)
    cs.store(group="schema/model", name="custom", node=CustomModelConfig)
    cs.store(group="schema/strategy", name="freezeout", node=StrategyConfig)
    cs.store(group="schema/strategy", name="layer_freezing", node=LayerFreezingConfig)
    cs.store(group="schema/strategy", name="autofreeze", node=AutoFreezeConfig)
    cs.store(group="schema/optimizer", name="sgd", node=SGDConfig)
    cs.store(group="schema/optimizer", name="adamw", node=AdamWConfig)


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


def validate(cfg: DictConfig, check_device: bool = True) -> torch.device | None:
    """Check every setting before anything is loaded or written; returns the resolved device.

    Raises :class:`ConfigError` with a message naming the key, the bad value and what is allowed.
    ``check_device=False`` (the sweep plan, reading another machine's step times) skips the
    device and returns None.
    """
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
    if cfg.cache_frozen:
        need(not cfg.data.augment, "cache_frozen=true needs data.augment=false: with augmentation a training "
                                   "image's frozen-prefix output changes every epoch, so it cannot be stored")
        need(hasattr(model, "forward_from"), f"cache_frozen=true needs a model that is the chain of its layer "
                                             f"groups (densenet, wrn, vgg); model={cfg.model.name} is not")  # timm etc.
        need(cfg.cache_memory_gb > 0, f"cache_memory_gb={cfg.cache_memory_gb}; need > 0")
    return device


def check_strategy_config(cfg: DictConfig) -> None:
    """The strategy's name and its own settings; what FreezeOut-only options a peer cannot take."""
    st = cfg.strategy
    if st.name not in STRATEGIES:
        raise ConfigError(f"strategy={st.name!r} is unknown; allowed: {', '.join(STRATEGIES)}")
    checks = {
        "layer_freezing": [(0.0 <= st.get("freeze_start", 0) < 1.0, "freeze_start", "[0, 1)"),
                           (0.0 < st.get("freeze_level", 1) <= 1.0, "freeze_level", "(0, 1]")],
        "autofreeze": [(st.get("interval", 1) >= 1, "interval", "an integer >= 1"),
                       (0.0 < st.get("percentile", 50) < 100.0, "percentile", "(0, 100)"),
                       (st.get("max_per_check", 1) >= 1, "max_per_check", "an integer >= 1")],
    }.get(st.name, [])
    for ok, key, allowed in checks:
        if not ok:
            raise ConfigError(f"strategy.{key}={st[key]} for {st.name}; allowed: {allowed}")
    if st.name in PEERS and cfg.const_time:
        raise ConfigError(f"const_time=true is defined for FreezeOut's own strategies, not strategy={st.name} "
                          "(its schedule depends on the run's length); set const_time=false")


def compose_config(*overrides: str) -> DictConfig:
    """The run config ``run.py`` composes from ``overrides``, for code that is not run.py (the
    benchmark, the processes it starts, scripts)."""
    from hydra import compose, initialize_config_dir

    use_shipped_sweeps()
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
