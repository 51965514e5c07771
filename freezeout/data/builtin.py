"""The built-in datasets (``data=cifar10|cifar100|fashion_mnist``), as before this package.

CIFAR-10/100 are read from CIFAR's own pickle batches in ``root`` (torchvision downloads them
when missing). Fashion-MNIST comes from ``root``, else a download, else the system copy of
Debian's ``dataset-fashion-mnist``. The validation split is the *last* ``val_size`` training
images, the training images the first ``subset`` of the rest; normalisation uses the usual
statistics of each full training set.
"""
from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .common import DatasetSpec, Raw, check_val_size, root_of, wanted_channels, wanted_size

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# name: (classes, channels, side in pixels, official train and test sizes, mean, std)
BUILTIN = {
    "cifar10": (10, 3, 32, 50_000, 10_000, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": (100, 3, 32, 50_000, 10_000, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "fashion_mnist": (10, 1, 28, 60_000, 10_000, (0.2860,), (0.3530,)),
}


def spec(opts) -> DatasetSpec:
    """Known facts (no file is read): the sizes of the official splits."""
    if opts.name not in BUILTIN:
        raise ConfigError(f"data.name={opts.name!r} is unknown; allowed: {', '.join(BUILTIN)} (or "
                          f"data=torchvision data.name=<a torchvision dataset>, data=image_folder)")
    classes, channels, side, n_train, n_test, mean, std = BUILTIN[opts.name]
    # These are used as stored: resizing and channel conversion are for the other sources.
    if wanted_size(opts) not in (None, (side, side)) or wanted_channels(opts) not in (None, channels):
        raise ConfigError(f"data={opts.name} is used at its own size and channels ({channels}x{side}x{side}); to "
                          "convert it use data=torchvision (e.g. data.name=CIFAR10) with data.image_size/data.channels")
    if opts.kwargs:
        raise ConfigError(f"data.kwargs={opts.kwargs} applies to data=torchvision only")
    available = check_val_size(opts, n_train, opts.name)
    return DatasetSpec(classes, channels, (side, side), available, opts.val_size, n_test, mean, std)


def load(opts, spec_: DatasetSpec, n_train: int, with_test: bool) -> Raw:
    """The last ``val_size`` training images for validation, the first ``subset`` (default: all)
    of the rest to train on. ``n_train`` assumed the official size: a local copy may differ."""
    root = root_of(opts)
    images, labels = _raw_arrays(opts.name, root, train=True, download=opts.download)
    n_train = _check_loaded_size(opts, root, len(images))
    val = opts.val_size
    raw = Raw(images[:n_train], labels[:n_train], images[-val:], labels[-val:])
    if with_test:
        raw.test_x, raw.test_y = _raw_arrays(opts.name, root, train=False, download=opts.download)
    return raw


def _check_loaded_size(opts, root: Path, n: int) -> int:
    """Split sizes against the copy actually loaded; returns the number of training images."""
    if opts.val_size >= n:
        raise ConfigError(f"data.val_size={opts.val_size} leaves no training images: {opts.name} in {root} has {n}")
    available = n - opts.val_size
    if opts.subset is not None and opts.subset > available:
        raise ConfigError(f"data.subset={opts.subset} is larger than the {available} training images "
                          f"of {opts.name} in {root}")
    return available if opts.subset is None else opts.subset


def _raw_arrays(name: str, root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """A split as (uint8 images NHWC, int64 labels)."""
    import torchvision

    if name == "fashion_mnist":
        provide_fashion_mnist(root, download)
        ds = torchvision.datasets.FashionMNIST(str(root), train=train, download=False)
        return ds.data.numpy()[..., None], ds.targets.numpy().astype(np.int64)
    return _cifar_arrays(name, root, train, download)


def _cifar_arrays(name: str, root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
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
    return np.concatenate(images).transpose(0, 2, 3, 1).copy(), np.asarray(labels, dtype=np.int64)


def provide_fashion_mnist(root: Path, download: bool) -> None:
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

