"""The built-in datasets (``data=cifar10|cifar100|fashion_mnist``), as before this package.

CIFAR-10/100 are read from CIFAR's own pickle batches in ``root`` (torchvision downloads them
when missing). Fashion-MNIST comes from ``root``, else a download, else the system copy of
Debian's ``dataset-fashion-mnist``. The validation split is the *last* ``val_size`` training
images, the training images the first ``subset`` of the rest; normalisation uses the usual
statistics of each full training set.
"""
from __future__ import annotations

import gzip
import logging
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .common import DatasetSpec, Raw, check_val_size, root_of, wanted_channels, wanted_size
from .store import empty_images

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: What a download fetches and what it takes once unpacked (MB), said before it starts.
SIZES_MB = {"fashion_mnist": (31, 55), "cifar10": (170, 185), "cifar100": (169, 184)}
log = logging.getLogger("freezeout")

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


def load(opts, spec_: DatasetSpec, n_train: int, with_test: bool, channels_last: bool = False) -> Raw:
    """The last ``val_size`` training images for validation, the first ``subset`` (default: all)
    of the rest to train on. ``n_train`` assumed the official size: a local copy may differ.
    Fashion-MNIST's files are read for the kept rows alone, straight into the splits' arrays;
    CIFAR's batches are read whole, and the splits are views of them (copied out with a subset)."""
    root = root_of(opts)
    val = opts.val_size
    if opts.name == "fashion_mnist":
        provide_fashion_mnist(root, opts.download)
        n = _fashion_count(root, train=True)
        n_train = _check_loaded_size(opts, root, n)
        raw = Raw(*_fashion_rows(root, True, 0, n_train), *_fashion_rows(root, True, n - val, val))
        if with_test:
            raw.test_x, raw.test_y = _fashion_rows(root, False, 0, _fashion_count(root, train=False))
        return raw
    images, labels = _cifar_arrays(opts.name, root, train=True, download=opts.download)
    n_train = _check_loaded_size(opts, root, len(images))
    train_x, val_x = images[:n_train], images[-val:]
    if n_train + val < len(images):
        train_x, val_x = _own(train_x, channels_last), _own(val_x, channels_last)
    raw = Raw(train_x, labels[:n_train].copy(), val_x, labels[-val:].copy())
    if with_test:
        raw.test_x, raw.test_y = _cifar_arrays(opts.name, root, train=False, download=opts.download)
    return raw


def _fashion_files(root: Path, train: bool) -> tuple[Path, Path]:
    prefix = "train" if train else "t10k"
    raw = root / "FashionMNIST" / "raw"
    return raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"


def _fashion_count(root: Path, train: bool) -> int:
    with open(_fashion_files(root, train)[0], "rb") as f:
        return struct.unpack(">IIII", f.read(16))[1]


def _fashion_rows(root: Path, train: bool, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start..start+count`` of a Fashion-MNIST split as uint8 (N, 28, 28, 1) and their
    labels, read from the IDX files (16- and 8-byte headers) into arrays of their own."""
    images, labels = _fashion_files(root, train)
    with open(images, "rb") as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        out = np.empty((count, h, w, 1), dtype=np.uint8)
        f.seek(16 + start * h * w)
        if f.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise ConfigError(f"{images} is cut short: it should hold {n} images of {h}x{w}")
    with open(labels, "rb") as f:
        f.seek(8 + start)
        y = np.frombuffer(f.read(count), dtype=np.uint8).astype(np.int64)
    return out, y


def _check_loaded_size(opts, root: Path, n: int) -> int:
    """Split sizes against the copy actually loaded; returns the number of training images."""
    if opts.val_size >= n:
        raise ConfigError(f"data.val_size={opts.val_size} leaves no training images: {opts.name} in {root} has {n}")
    available = n - opts.val_size
    if opts.subset is not None and opts.subset > available:
        raise ConfigError(f"data.subset={opts.subset} is larger than the {available} training images "
                          f"of {opts.name} in {root}")
    return available if opts.subset is None else opts.subset


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
        fetch, unpacked = SIZES_MB[name]
        log.info("%s is not in %s: downloading %d MB (%d MB unpacked) into %s", name, root, fetch, unpacked,
                 root.resolve())
        try:
            cls(str(root), train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise ConfigError(
                f"{name} is not in data.root={str(root)!r} and downloading it failed ({type(e).__name__}: "
                f"{e}). Without internet, download it on another machine (python -c \"import "
                f"torchvision; torchvision.datasets.{cls.__name__}('DIR', download=True)\"), copy "
                f"DIR/{cls.base_folder} into data.root, or train on Fashion-MNIST: data=fashion_mnist"
            ) from None
    out, filled, labels = None, 0, []
    for f in files:  # into one array as they come (CIFAR's batches are equal): no second copy
        with open(f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        rows = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        if out is None:
            out = np.empty((len(rows) * len(files), 3, 32, 32), dtype=np.uint8)
        if filled + len(rows) > len(out):
            out = np.concatenate([out[:filled], np.empty((filled + len(rows) - len(out), 3, 32, 32), np.uint8)])
        out[filled:filled + len(rows)] = rows
        filled += len(rows)
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    # CIFAR's rows are (C, H, W): an (N, H, W, C) view of them is laid out as the store keeps them
    return out[:filled].transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def _own(images: np.ndarray, channels_last: bool) -> np.ndarray:
    """A copy of a split's (N, H, W, C) images in memory of its own, laid out as the store keeps them."""
    out = empty_images(*images.shape, channels_last)
    out[...] = images
    return out


def provide_fashion_mnist(root: Path, download: bool) -> None:
    """Make sure ``root/FashionMNIST/raw`` holds the four files: download, else copy the system's."""
    import torchvision

    raw = root / "FashionMNIST" / "raw"
    files = [Path(url).name[: -len(".gz")] for url, _ in torchvision.datasets.FashionMNIST.resources]
    if all((raw / f).exists() for f in files):
        return
    fetch, unpacked = SIZES_MB["fashion_mnist"]
    if download:
        log.info("fashion_mnist is not in %s: downloading %d MB (%d MB unpacked) into %s", root, fetch, unpacked,
                 raw.resolve())
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
    log.info("unpacking the system's Fashion-MNIST (%s, %d MB unpacked) into %s", SYSTEM_FASHION_MNIST, unpacked,
             raw.resolve())
    raw.mkdir(parents=True, exist_ok=True)
    for f in files:
        # Debian recompressed these gzips, so torchvision's md5 check would reject them: unpack.
        tmp = raw / f"{f}.tmp"
        with gzip.open(SYSTEM_FASHION_MNIST / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(raw / f)

