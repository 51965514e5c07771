"""The config schema (registered in Hydra's ConfigStore), where the shipped configs live, and how
a run config is composed outside ``freezeout train``.

Types are enforced by Hydra when composing (``t_0=abc`` fails there, naming the key); ranges and
names are checked by :func:`freezeout.training.checks.validate` before any data is loaded or any
file is written. This module imports nothing of the project but its errors, the run identity's
resolver and FreezeOut's settings (:mod:`freezeout.freezing.schedule`, a leaf), so every package
may import the schema; :func:`register_configs` loads the freezing rules (torch-free), whose
schemas are theirs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from .freezing.schedule import FreezeOutSettings

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

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
class ModelInitConfig:
    """The weights any model may start from (freezeout/models/init.py), fields of every model schema."""
    init: Optional[str] = None  # state_dict or checkpoint to start from (fine-tuning); None: fresh weights
    init_strict: bool = True  # missing or unexpected keys in it stop the run (false: load what fits)


@dataclass
class DenseNetConfig(ModelInitConfig):
    name: str = "densenet"
    depth: int = 76  # L: (L - 4) / 6 bottlenecks per dense block
    growth_rate: int = 12  # k: channels each bottleneck adds
    compression: float = 0.5  # channel factor at each transition (the "C" of DenseNet-BC)


@dataclass
class WRNConfig(ModelInitConfig):
    name: str = "wrn"
    depth: int = 28
    widen_factor: int = 10
    dropout: float = 0.0


@dataclass
class VGGConfig(ModelInitConfig):
    name: str = "vgg"
    depth: int = 16  # 11, 13, 16 or 19
    width: int = 64  # channels of the first block (64 in the original VGG)


@dataclass
class TimmModelConfig(ModelInitConfig):
    kind: str = "timm"
    name: str = MISSING  # any timm model, e.g. resnet18, vit_tiny_patch16_224, convnext_atto
    pretrained: bool = False  # load timm's pretrained weights (needs network or a filled HF cache)
    # More create_model arguments, e.g. {img_size: 28}. Any, not Dict: `model.kwargs={...}` replaces
    # it then, where a typed dict in a struct config would refuse new keys.
    kwargs: Any = None
    groups: Any = "auto"  # auto | [prefix or regex of parameter names, ...] in forward order, head last
    max_groups: Optional[int] = None  # merge neighbouring groups (never the head) to about equal FLOPs


@dataclass
class TorchvisionModelConfig(ModelInitConfig):
    kind: str = "torchvision"
    name: str = MISSING  # a torchvision classification model, e.g. resnet18, mobilenet_v3_small
    kwargs: Any = None  # more get_model arguments, e.g. {dropout: 0.3}
    groups: Any = "auto"
    max_groups: Optional[int] = None


@dataclass
class CustomModelConfig(ModelInitConfig):
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
class DataConfig:
    """Every data option, for every source (freezeout/data/); unused ones are ignored."""
    # builtin (name: cifar10 | cifar100 | fashion_mnist) | image_folder | shards (WebDataset tars) | torchvision
    source: str = "builtin"
    # builtin: the dataset; torchvision: a class of torchvision.datasets (MNIST, SVHN...); image_folder: a
    # label for summaries and analysis (name two folders differently: data.root does not tell runs apart)
    name: str = MISSING
    root: str = "data"  # where datasets live / are downloaded (relative to the launch directory)
    subset: Optional[int] = None  # train on the first N training images only (None: all)
    # images held out of the training split for validation: builtin, the last val_size; image_folder and
    # torchvision, the last val_size of a fixed pseudo-random order; image_folder with a val/ folder: unused
    val_size: int = 5000
    # a recipe: pad_crop_flip (pad-4 random crop, padded black, + horizontal flip; `true` means it, as before) |
    # random_resized_crop_flip (ImageNet-style, streamed data) | none (`false`); applied per batch on the device
    # (in memory) or on the loader's workers (streamed). Evaluation: resize (+ centre crop for random_resized_crop)
    augment: Any = False
    download: bool = True  # try torchvision's download when the data is not in root
    # resize to N x N or [H, W] pixels (image_folder, shards, torchvision); None: as stored
    image_size: Optional[Any] = None
    channels: Optional[int] = None  # 1 (grey) or 3 (RGB) (image_folder, shards, torchvision); None: as the first image
    kwargs: Dict[str, Any] = field(default_factory=dict)  # extra constructor arguments (torchvision)
    # keep every split in memory as uint8 while it fits this many GB (GB = 1e9 bytes; the bytes really stored)
    max_memory_gb: float = 8.0
    # memory (every split stored on the device as uint8) | stream (decoded by DataLoader workers each epoch:
    # image_folder, shards) | auto (memory while it fits max_memory_gb, else stream; the log says which)
    loader: str = "auto"
    workers: int = 4  # streamed: DataLoader worker processes (decoding and augmentation run there)
    prefetch: int = 2  # streamed: batches each worker prepares ahead
    skip_bad_images: bool = False  # an unreadable image: false stops the run naming it; true skips and counts it


@dataclass
class Config(FreezeOutSettings):
    """The run config. Its own defaults are here; FreezeOut's settings (t_0, scale_lr, const_time)
    come from :class:`FreezeOutSettings`, each rule's ``strategy.*`` from the rule's schema
    (freezeout/freezing/rules/), each yaml in conf/ selects and overrides, never restates."""
    model: Any = MISSING
    optimizer: Any = MISSING
    strategy: Any = MISSING  # a rule's schema (schema/strategy/NAME), chosen by conf/strategy/NAME.yaml
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 100
    batch_size: int = 50  # images per step
    seed: int = 0
    device: str = "auto"  # auto (cuda when present, else cpu) | cpu | cuda | cuda:N
    eval_test: bool = False  # also evaluate the test split at the end
    predict_time: bool = False  # measure per-stage step times for the "time" speedup model
    predict_time_share: float = 0.1  # the time model may cost at most this share of the run's steps
    # fp32 (IEEE float32 everywhere) | tf32 (float32 with TF32 matmuls and convolutions on CUDA; fp32 on the
    # CPU) | bf16 | fp16 (autocast; fp16 on CUDA only)
    precision: str = "fp32"
    channels_last: bool = False  # NHWC memory format, the data stored in it once (faster convs on recent GPUs)
    compile: bool = False  # torch.compile each layer group (two forms: training and frozen)
    compile_backend: str = "inductor"  # torch.compile's backend (aot_eager, eager: checks without a compiler)
    # true | false | auto: train from stored outputs of the frozen prefix (needs data.augment=none); auto reads
    # the store only at the stages where the time model measures it faster than recomputing the prefix
    cache_frozen: Any = False
    # the most the cache may hold, GB: both store buffers (the old and the new coexist while it advances) and the
    # training images where they share its memory
    cache_memory_gb: float = 4.0
    cache_host: bool = False  # keep the store in pinned host memory instead of on the device
    sync_bn: bool = False  # several processes: SyncBatchNorm (statistics over all of them; CUDA only)
    log_every: int = 50  # iterations between host syncs (progress bar, divergence check)
    checkpoint: bool = True  # save a checkpoint after every epoch, for resume
    progress: bool = True  # show a progress bar
    debug: bool = False  # show full tracebacks instead of one-line errors
    # The enabled trackers, each added by its option of the logger group (conf/logger/, one file per logger
    # with its settings): logger=[tensorboard,mlflow,csv]. Read by freezeout/training/trackers.py.
    logger: Dict[str, Any] = field(default_factory=dict)


def register_configs() -> None:
    """Register the schema, the per-model and per-optimizer schemas with Hydra's ConfigStore, and
    load the freezing rules, each of which registers its own (``schema/strategy/NAME``; those of
    ``freezeout_rules`` packages on ``sys.path`` too). Call it before composing a config."""
    from .freezing.rules import load_rule_plugins  # torch-free: the rules' declarations only

    load_rule_plugins()
    cs = ConfigStore.instance()
    cs.store(name="freezeout_schema", node=Config)
    # In a group of their own, so that `model=` lists only the real choices.
    cs.store(group="schema/model", name="densenet", node=DenseNetConfig)
    cs.store(group="schema/model", name="wrn", node=WRNConfig)
    cs.store(group="schema/model", name="vgg", node=VGGConfig)
    cs.store(group="schema/model", name="timm", node=TimmModelConfig)
    cs.store(group="schema/model", name="torchvision", node=TorchvisionModelConfig)
    cs.store(group="schema/model", name="custom", node=CustomModelConfig)
    cs.store(group="schema/optimizer", name="sgd", node=SGDConfig)
    cs.store(group="schema/optimizer", name="adamw", node=AdamWConfig)


def compose_config(*overrides: str) -> DictConfig:
    """The run config ``run.py`` composes from ``overrides``, for code that is not run.py (the
    benchmark, the processes it starts, scripts)."""
    from hydra import compose, initialize_config_dir

    from .rundir.identity import register_run_name_resolver  # Hydra's own config names run dirs with it

    use_shipped_sweeps()
    register_configs()
    register_run_name_resolver()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
