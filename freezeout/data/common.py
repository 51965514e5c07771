"""What every data source shares: the spec and splits types, the data options, split-size and
memory checks, the fixed train/validation order, and normalisation statistics."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import DataConfig
from ..errors import ConfigError
from .recipes import augment_recipe

SOURCES = ("builtin", "image_folder", "shards", "torchvision")
STREAMABLE = ("image_folder", "shards")  # sources of image files, which data.loader=stream decodes as it goes
LOADERS = ("auto", "memory", "stream")


@dataclass(frozen=True)
class DatasetSpec:
    """Facts about a dataset as configured: what the model and the checks need before loading."""

    num_classes: int
    in_channels: int
    image_size: tuple[int, int]  # (H, W) in pixels, after any resize
    train_size: int  # training images available once the validation split is held out
    val_size: int  # validation images
    test_size: int | None  # test images (0: no test split; None: not known before loading)
    mean: tuple[float, ...] | None = None  # per channel, in [0, 1] pixel units; None until the
    std: tuple[float, ...] | None = None  # training split is loaded (where computed from it)
    classes: tuple[str, ...] | None = None  # class names in label order, where known

    @property
    def black(self) -> tuple[float, ...]:
        """The value a black pixel (0) takes after normalisation, per channel: what augmentation
        pads with, as torchvision's RandomCrop pads the image before Normalize."""
        mean = torch.tensor(self.mean, dtype=torch.float32)
        std = torch.tensor(self.std, dtype=torch.float32)
        return tuple(((torch.zeros_like(mean) - mean) / std).tolist())  # the same ops as normalise()


@dataclass
class Splits:
    """Every split's images and labels (on the device). The images are indexed like float32
    (N, C, H, W) tensors and answer normalised batches: an :class:`~freezeout.data.store.ImageStore`
    (uint8 kept in memory), or, streamed, a :class:`~freezeout.data.loader.StreamedImages` (read in
    order, for evaluation and the frozen-prefix cache) with ``stream``, the training loader."""

    train_x: Any
    train_y: torch.Tensor
    val_x: Any
    val_y: torch.Tensor
    test_x: Any | None
    test_y: torch.Tensor | None
    spec: DatasetSpec
    loader: str = "memory"  # memory | stream: how the training images come
    stream: Any = None  # the training loader (freezeout.data.loader.TrainStream) when streamed
    bad_images: list = dataclasses.field(default_factory=list)  # unreadable images skipped (skip_bad_images)


@dataclass
class Raw:
    """A source's images before normalisation: uint8 (N, H, W, C) arrays (laid out in memory as
    the store keeps them, where the source can) and int64 labels; ``bad``: the unreadable images
    left out (``data.skip_bad_images``)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    bad: list[str] = dataclasses.field(default_factory=list)


def options(data_cfg: Any):
    """The data options as a :class:`freezeout.config.DataConfig`, from a DictConfig, a dict or
    a DataConfig; unset mandatory values are a ConfigError naming the key."""
    if isinstance(data_cfg, DataConfig):
        given = dataclasses.asdict(data_cfg)
    elif isinstance(data_cfg, dict):
        given = dict(data_cfg)
    else:  # an OmegaConf node
        from omegaconf import OmegaConf
        given = OmegaConf.to_container(data_cfg, resolve=True)
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(DataConfig)})
    if unknown:
        raise ConfigError(f"data has no option {', '.join(unknown)}")
    opts = DataConfig(**given)
    for key in ("name", "root"):
        if getattr(opts, key) == "???":
            raise ConfigError(f"data.{key} is not set: data={opts.source} needs data.{key}=...")
    if opts.source not in SOURCES:
        raise ConfigError(f"data.source={opts.source!r} is unknown; allowed: {', '.join(SOURCES)}")
    opts.kwargs = dict(opts.kwargs or {})
    augment_recipe(opts.augment)
    if opts.loader not in LOADERS:
        raise ConfigError(f"data.loader={opts.loader!r} is unknown; allowed: {', '.join(LOADERS)}")
    if opts.loader == "stream" and opts.source not in STREAMABLE:
        raise ConfigError(f"data.loader=stream reads image files: data.source={opts.source} is loaded into memory; "
                          f"stream with data=image_folder or data=shards, or set data.loader=memory")
    if not (isinstance(opts.workers, int) and opts.workers >= 0):
        raise ConfigError(f"data.workers={opts.workers!r}; need an integer >= 0 (0: decode in the training process)")
    if not (isinstance(opts.prefetch, int) and opts.prefetch >= 1):
        raise ConfigError(f"data.prefetch={opts.prefetch!r}; need an integer >= 1 (batches each worker prepares)")
    return opts


def root_of(opts) -> Path:
    return Path(opts.root).expanduser()


def wanted_size(opts) -> tuple[int, int] | None:
    """``data.image_size`` as (H, W): an int is a square; None keeps the stored size."""
    size = opts.image_size
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise ConfigError(f"data.image_size={opts.image_size!r}; need a positive int or [H, W]")
    return int(size[0]), int(size[1])


def wanted_channels(opts) -> int | None:
    if opts.channels not in (None, 1, 3):
        raise ConfigError(f"data.channels={opts.channels!r}; allowed: 1 (grey), 3 (RGB), or null (as the first image)")
    return opts.channels


def check_val_size(opts, n: int, where: str) -> int:
    """``data.val_size`` against the ``n`` training images it is held out of; returns the rest."""
    if not 1 <= opts.val_size < n:
        raise ConfigError(f"data.val_size={opts.val_size} is outside [1, {n - 1}] for {where} "
                          f"({n} training images)")
    return n - opts.val_size


def check_sizes(data_cfg: Any, spec: DatasetSpec, with_test: bool = False) -> int:
    """Subset range, a test split when one is needed, and the memory budget (unless the data
    will stream), all before anything is loaded; returns the number of training images."""
    opts = options(data_cfg)
    available = spec.train_size
    if opts.subset is not None and not 1 <= opts.subset <= available:
        raise ConfigError(
            f"data.subset={opts.subset} is outside [1, {available}]: {opts.name} has {available} training "
            f"images once the {spec.val_size} validation images are held out")
    n_train = available if opts.subset is None else opts.subset
    if with_test and spec.test_size == 0:
        raise ConfigError(f"eval_test=true, but {opts.name} has no test split; set eval_test=false")
    n_test = (spec.test_size or 0) if with_test else 0  # None: known once loaded, checked again then
    choose_loader(opts, n_train + spec.val_size + n_test, spec.in_channels, spec.image_size)
    return n_train


def stored_gb(n_images: int, channels: int, size: tuple[int, int]) -> float:
    """GB the images take in memory: uint8, one byte a pixel and channel."""
    return n_images * channels * size[0] * size[1] / 1e9


def choose_loader(opts, n_images: int, channels: int, size: tuple[int, int]) -> str:
    """``memory`` or ``stream``: ``data.loader``, with ``auto`` keeping the data in memory while
    its uint8 images (all splits) fit ``data.max_memory_gb`` and streaming it otherwise (image
    files only). Data that must be in memory and does not fit is a ConfigError."""
    if opts.loader == "stream":
        return "stream"
    if stored_gb(n_images, channels, size) <= opts.max_memory_gb:
        return "memory"
    if opts.loader == "auto" and opts.source in STREAMABLE:
        return "stream"
    check_memory(opts, n_images, channels, size)
    return "memory"


def check_memory(opts, n_images: int, channels: int, size: tuple[int, int]) -> None:
    """Refuse data kept in memory whose uint8 images (all splits together) exceed the budget."""
    gb = stored_gb(n_images, channels, size)
    if gb > opts.max_memory_gb:
        stream = ", or stream it (data.loader=stream)" if opts.source in STREAMABLE else ""
        raise ConfigError(
            f"{opts.name} would take {gb:.3g} GB in memory as uint8 ({n_images} images of {channels}x"
            f"{size[0]}x{size[1]}, all splits), more than data.max_memory_gb={opts.max_memory_gb}: train on "
            f"fewer images (data.subset=N), make them smaller (data.image_size=N), raise data.max_memory_gb{stream}")


def fixed_order(keys: Sequence[str]) -> list[int]:
    """Indices of ``keys`` ordered by the SHA-1 of each key: a pseudo-random order that mixes
    classes, is the same on every machine and for every seed, and keeps the relative order of
    existing images when new ones are added."""
    return sorted(range(len(keys)), key=lambda i: hashlib.sha1(keys[i].encode()).digest())


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NHWC images, in [0, 1] units, computed
    exactly from a 256-bin histogram per channel."""
    t = torch.from_numpy(images)
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[-1]):  # a chunk of images at a time: a channel is strided in NCHW memory
        counts = sum(torch.bincount(t[i:i + 4096, ..., c].reshape(-1), minlength=256).double()
                     for i in range(0, len(t), 4096))
        mean = (counts * values).sum() / counts.sum()
        var = (counts * (values - mean) ** 2).sum() / counts.sum()
        means.append(mean.item())
        stds.append(var.sqrt().item() or 1.0)  # a constant channel: leave its scale alone
    return tuple(means), tuple(stds)


def normalise(images: np.ndarray | torch.Tensor, spec: DatasetSpec, device: torch.device) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW on ``device``, normalised per channel."""
    x = torch.as_tensor(images).to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()
