"""Datasets as tensors on the device; batching and augmentation are tensor ops (as in airbench).

CIFAR-10/100 come from torchvision (downloaded into ``root`` when missing). Fashion-MNIST comes
from ``root``, else a download, else the system copy of Debian's ``dataset-fashion-mnist``.
"""
from __future__ import annotations

import gzip
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import ConfigError

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset: what the model and the config check need before loading."""

    num_classes: int
    in_channels: int
    image_size: int
    train_size: int  # images in the official training split (validation is carved from it)
    mean: tuple[float, ...]  # per-channel normalisation, in [0, 1] pixel units
    std: tuple[float, ...]


DATASETS = {
    "cifar10": DatasetSpec(10, 3, 32, 50_000, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetSpec(100, 3, 32, 50_000, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "fashion_mnist": DatasetSpec(10, 1, 28, 60_000, (0.2860,), (0.3530,)),
}


@dataclass
class Splits:
    """Normalised images (N, C, H, W) and labels on the device, for each split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    spec: DatasetSpec


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; unknown names are rejected with the allowed ones."""
    if name not in DATASETS:
        raise ConfigError(f"data.name={name!r} is unknown; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def check_split_sizes(name: str, val_size: int, subset: int | None) -> int:
    """Validate the split sizes against the dataset; returns the number of training images."""
    spec = dataset_spec(name)
    if not 1 <= val_size < spec.train_size:
        raise ConfigError(f"data.val_size={val_size} is outside [1, {spec.train_size - 1}] for {name}")
    available = spec.train_size - val_size
    if subset is None:
        return available
    if not 1 <= subset <= available:
        raise ConfigError(
            f"data.subset={subset} is outside [1, {available}]: {name} has {available} training "
            f"images once data.val_size={val_size} are held out for validation"
        )
    return subset


def _raw_arrays(name: str, root: Path, train: bool, download: bool):
    """Load a split with torchvision as (uint8 images NHWC or NHW, int64 labels)."""
    import torchvision

    if name == "fashion_mnist":
        _provide_fashion_mnist(root, download)
        ds = torchvision.datasets.FashionMNIST(str(root), train=train, download=False)
        return torch.as_tensor(ds.data).unsqueeze(-1), torch.as_tensor(ds.targets, dtype=torch.long)
    return _cifar_arrays(name, root, train, download)


def _cifar_arrays(name: str, root: Path, train: bool, download: bool):
    """Read CIFAR's own pickle batches from ``root``; torchvision downloads them when missing
    (its download checks the archive's md5). Reading the batches here keeps working on copies
    of any size, such as the small ones the tests write."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    folder = root / cls.base_folder
    files = [folder / f for f, _ in (cls.train_list if train else cls.test_list)]
    if not all(f.exists() for f in files):
        if not download:
            raise ConfigError(
                f"{name} is not in data.root={str(root)!r} and data.download=false: put the "
                f"extracted '{cls.base_folder}' folder there, or allow the download"
            )
        try:
            cls(str(root), train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise ConfigError(
                f"{name} is not in data.root={str(root)!r} and downloading it failed ({type(e).__name__}: "
                f"{e}). Without internet, download it on another machine (python -c \"import "
                f"torchvision; torchvision.datasets.{cls.__name__}('DIR', download=True)\"), copy "
                f"DIR/{cls.base_folder} into data.root, or train on Fashion-MNIST: data=fashion_mnist"
            ) from None
    images, labels = [], []
    for f in files:
        with open(f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    x = torch.from_numpy(np.concatenate(images).transpose(0, 2, 3, 1).copy())
    return x, torch.tensor(labels, dtype=torch.long)


def _provide_fashion_mnist(root: Path, download: bool) -> None:
    """Make sure ``root/FashionMNIST/raw`` holds the four files: download, else copy the system's."""
    import torchvision

    raw = root / "FashionMNIST" / "raw"
    files = [Path(url).name[: -len(".gz")] for url, _ in torchvision.datasets.FashionMNIST.resources]
    if all((raw / f).exists() for f in files):
        return
    if download:
        try:
            torchvision.datasets.FashionMNIST(str(root), download=True)
            return
        except Exception:  # offline: fall back to the system copy below
            pass
    if not all((SYSTEM_FASHION_MNIST / f"{f}.gz").exists() for f in files):
        raise ConfigError(
            f"Fashion-MNIST is not in data.root={str(root)!r}, could not be downloaded, and the system "
            f"copy {SYSTEM_FASHION_MNIST} is missing: install it with "
            "'apt-get install dataset-fashion-mnist' (Debian/Ubuntu)"
        )
    raw.mkdir(parents=True, exist_ok=True)
    for f in files:
        # Debian recompressed these gzips, so torchvision's md5 check would reject them: unpack.
        tmp = raw / f"{f}.tmp"
        with gzip.open(SYSTEM_FASHION_MNIST / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(raw / f)


def _normalise(images: torch.Tensor, spec: DatasetSpec, device: torch.device) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW on ``device``, normalised per channel."""
    x = images.to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def load_data(name: str, root: str | Path, device: torch.device, val_size: int = 5000,
              subset: int | None = None, with_test: bool = False, download: bool = True) -> Splits:
    """Load ``name`` onto ``device``: the last ``val_size`` training images are the validation
    split, the first ``subset`` (default: all) of the rest are trained on."""
    spec = dataset_spec(name)
    check_split_sizes(name, val_size, subset)
    root = Path(root).expanduser()
    images, labels = _raw_arrays(name, root, train=True, download=download)
    n_train = _check_loaded_size(name, root, len(images), val_size, subset)
    # Only the kept images are converted: a small subset must not hold the whole set in memory.
    train_x, val_x = _normalise(images[:n_train], spec, device), _normalise(images[-val_size:], spec, device)
    test_x = test_y = None
    if with_test:
        t_images, t_labels = _raw_arrays(name, root, train=False, download=download)
        test_x, test_y = _normalise(t_images, spec, device), t_labels.to(device)
    return Splits(train_x, labels[:n_train].to(device), val_x, labels[-val_size:].to(device), test_x,
                  test_y, spec)


def _check_loaded_size(name: str, root: Path, n: int, val_size: int, subset: int | None) -> int:
    """Split sizes against the copy actually loaded (a local copy may differ from the official)."""
    if val_size >= n:
        raise ConfigError(f"data.val_size={val_size} leaves no training images: {name} in {root} has {n}")
    available = n - val_size
    if subset is not None and subset > available:
        raise ConfigError(f"data.subset={subset} is larger than the {available} training images of {name} in {root}")
    return available if subset is None else subset


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` pixels, and random horizontal flip, per image."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def iterations_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped, so every step sees ``batch_size``)."""
    return n // batch_size


def batch_stream(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int,
                 augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches, epoch after epoch, from their own generator (equal seeds give
    equal batches): for measurements that must not touch a run's random streams."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    while True:
        yield from train_batches(x, y, batch_size, generator, augment)


def train_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                  augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled batches, drawn and augmented on the device."""
    perm = torch.randperm(len(x), device=x.device, generator=generator)
    for i in range(iterations_per_epoch(len(x), batch_size)):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        xb = x[idx]
        yield (augment_batch(xb, generator) if augment else xb), y[idx]
