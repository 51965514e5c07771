"""Any torchvision image-classification dataset by its class name: ``data=torchvision
data.name=MNIST`` (``data.kwargs`` holds extra constructor arguments, e.g. EMNIST's ``split``).

The training split is the one torchvision calls train (``train=True`` or ``split="train"``); the
test split its test (or, where a dataset has no labelled test split, val). Validation is held out
of the training split as for image folders: the last ``val_size`` images of a fixed pseudo-random
order (by the SHA-1 of each index), ``subset`` the first N of the rest.
"""
from __future__ import annotations

import difflib
import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .common import DatasetSpec, Raw, check_memory, check_val_size, fixed_order, root_of, wanted_channels, wanted_size
from .images import channels_of, check_same_size, to_array
from .store import empty_images

log = logging.getLogger("freezeout")

# Modules (and classes) of torchvision.datasets whose targets are not one class per image.
_NOT_CLASSIFICATION_MODULES = {"_stereo_matching", "_optical_flow", "coco", "flickr", "sbu", "voc", "cityscapes",
                               "kitti", "widerface", "sbd", "phototour", "kinetics", "ucf101", "hmdb51",
                               "moving_mnist", "celeba"}
_NOT_CLASSIFICATION = {"LFWPairs", "VisionDataset"}
# The (train, test) values of ``split`` where they are not ("train", "test").
_SPLIT_NAMES = {"OxfordIIITPet": ("trainval", "test"), "FGVCAircraft": ("trainval", "test"),
                "Places365": ("train-standard", "val"), "ImageNet": ("train", "val"),
                "Imagenette": ("train", "val"), "CLEVRClassification": ("train", "val")}
_SPEC_CACHE: dict[str, DatasetSpec] = {}


def spec(opts) -> DatasetSpec:
    """A light load: the training split is constructed (downloaded if allowed and needed) and
    one sample read, for the channels, size and number of classes; cached per process."""
    key = repr((opts.name, opts.root, sorted(opts.kwargs.items()), opts.download, opts.val_size,
                opts.image_size, opts.channels))
    if key not in _SPEC_CACHE:
        cls = dataset_class(opts.name)
        ds = construct(cls, opts, train=True)
        img, _ = _sample(ds, 0, opts.name)
        channels = wanted_channels(opts) or channels_of(img)
        size = wanted_size(opts) or (img.height, img.width)
        available = check_val_size(opts, len(ds), f"torchvision.datasets.{opts.name}")
        classes = getattr(ds, "classes", None)
        named = isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)
        test_size = None if _split_args(cls, opts.name, train=False) is not None else 0
        _SPEC_CACHE[key] = DatasetSpec(_num_classes(ds, opts.name), channels, size, available, opts.val_size,
                                       test_size, classes=tuple(classes) if named else None)
    return _SPEC_CACHE[key]


def load(opts, spec_: DatasetSpec, n_train: int, with_test: bool, channels_last: bool = False) -> Raw:
    cls = dataset_class(opts.name)
    ds = construct(cls, opts, train=True)
    test = construct(cls, opts, train=False) if with_test else None
    if test is not None:  # the test split's size is known only now: check the budget again
        check_memory(opts, n_train + spec_.val_size + len(test), spec_.in_channels, spec_.image_size)
    order = fixed_order([str(i) for i in range(len(ds))])
    img, _ = _sample(ds, 0, opts.name)
    ref = (f"torchvision.datasets.{opts.name} sample 0", (img.height, img.width))
    raw = Raw(*_arrays(ds, order[:n_train], spec_, opts, ref, channels_last),
              *_arrays(ds, order[-opts.val_size:], spec_, opts, ref, channels_last))
    if test is not None:
        raw.test_x, raw.test_y = _arrays(test, list(range(len(test))), spec_, opts, ref, channels_last)
    for labels in (raw.train_y, raw.val_y, raw.test_y):
        if labels is not None and len(labels) and not 0 <= labels.min() <= labels.max() < spec_.num_classes:
            raise ConfigError(f"torchvision.datasets.{opts.name} has labels outside [0, {spec_.num_classes}): "
                              f"{labels.min()}..{labels.max()}; is it labelled? (check data.kwargs)")
    return raw


def dataset_class(name: str) -> type:
    """``torchvision.datasets.<name>``, if it is an image-classification dataset."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None) if name in tvd.__all__ else None
    if not isinstance(cls, type):
        names = {n.lower(): n for n in classification_names()}
        close = [names[n] for n in difflib.get_close_matches(name.lower(), list(names), n=3, cutoff=0.6)]
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"data.name={name!r} is not a torchvision dataset{hint}; image-classification ones: "
                          f"{', '.join(classification_names())}")
    if name in ("ImageFolder", "DatasetFolder"):
        raise ConfigError(f"data.name={name}: for a folder of your own images use data=image_folder data.root=DIR")
    if not _is_classification(cls):
        raise ConfigError(f"torchvision.datasets.{name} is not an image-classification dataset (its samples are "
                          "not an image and one class index); data=torchvision takes e.g. MNIST, CIFAR10, SVHN")
    return cls


def classification_names() -> list[str]:
    import torchvision.datasets as tvd

    classes = {n: getattr(tvd, n) for n in tvd.__all__ if n not in ("ImageFolder", "DatasetFolder")}
    return sorted(n for n, cls in classes.items() if isinstance(cls, type) and _is_classification(cls))


def _is_classification(cls: type) -> bool:
    module = cls.__module__.rsplit(".", 1)[-1]
    return cls.__name__ not in _NOT_CLASSIFICATION and module not in _NOT_CLASSIFICATION_MODULES


def _params(cls: type) -> set[str]:
    """Keyword arguments ``cls`` accepts, following ``**kwargs`` up the class hierarchy (EMNIST)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        params = inspect.signature(klass.__init__).parameters
        names |= {k for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names - {"self"}


def _split_args(cls: type, name: str, train: bool) -> dict | None:
    """The arguments that choose the training or test split; None: the dataset has no test split."""
    params = _params(cls)
    if "train" in params:
        return {"train": train}
    if "split" in params:
        return {"split": _SPLIT_NAMES.get(name, ("train", "test"))[0 if train else 1]}
    return {} if train else None


def construct(cls: type, opts, train: bool):
    """The dataset from ``root`` if it is there, else downloaded (when allowed); every failure is
    one ConfigError that says what to do."""
    name, root, params = cls.__name__, root_of(opts), _params(cls)
    split = _split_args(cls, name, train)
    clash = sorted(set(opts.kwargs) & ({"root", "download", "transform", "target_transform"} | set(split)))
    if clash:
        raise ConfigError(f"data.kwargs may not set {', '.join(clash)}: the harness sets those "
                          "(data.root, data.download; the training and test splits)")
    args: dict[str, Any] = {**({"root": str(root)} if "root" in params else {}), **opts.kwargs, **split}
    required = [k for k, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k != "self"]
    missing = [k for k in required if k not in args]
    if missing:
        choices = ""
        if missing == ["split"] and hasattr(cls, "splits"):  # EMNIST lists its variants
            choices = f" (one of {', '.join(map(str, cls.splits))})"
        raise ConfigError(f"torchvision.datasets.{name} needs {', '.join(missing)}{choices}: set it in data.kwargs, "
                          f"e.g. '+data.kwargs.{missing[0]}=VALUE'")
    call = f"torchvision.datasets.{name}({', '.join(f'{k}={v!r}' for k, v in args.items())}"
    try:
        return _call(cls, args, call, download=False if "download" in params else None)
    except _Missing as e:
        first = e.error
    if "download" not in params:
        raise ConfigError(f"{name} is not in data.root={str(root)!r} ({_line(first)}) and torchvision cannot "
                          "download it: fetch it as torchvision's documentation for it says, into data.root") from None
    if not opts.download:
        raise ConfigError(f"{name} is not in data.root={str(root)!r} and data.download=false ({_line(first)}): "
                          "put it there, or allow the download") from None
    # torchvision knows each dataset's files, not their sizes: say where, and what to expect
    log.info("%s is not in %s: torchvision downloads it into %s (its size: torchvision's documentation of %s; "
             "data.download=false refuses)", name, root, Path(str(root)).resolve(), name)
    try:
        return _call(cls, args, call, download=True)
    except _Missing as e:
        raise ConfigError(
            f"{name} is not in data.root={str(root)!r} and downloading it failed ({_line(e.error)}). Without "
            f"internet, download it on another machine (python -c \"import torchvision; "
            f"torchvision.datasets.{name}('DIR', {''.join(f'{k}={v!r}, ' for k, v in args.items() if k != 'root')}"
            f"download=True)\"), copy everything in DIR into data.root, or train on Fashion-MNIST: "
            "data=fashion_mnist") from None


class _Missing(Exception):
    """The dataset could not be constructed from what is (or was downloaded) in root."""

    def __init__(self, error: Exception):
        self.error = error


def _call(cls: type, args: dict, call: str, download: bool | None):
    kwargs = args if download is None else {**args, "download": download}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # torchvision checks its arguments with these
        raise ConfigError(f"{call}) rejected its arguments ({_line(e)}); check data.kwargs") from None
    except ImportError as e:
        raise ConfigError(f"torchvision.datasets.{cls.__name__} needs the package {e.name!r}: pip install it") from None
    except Exception as e:  # missing files and network errors come in many types
        raise _Missing(e) from None


def _line(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _sample(ds, i: int, name: str):
    """Sample ``i`` as (PIL image, int label); anything else is not image classification."""
    from PIL import Image

    sample = ds[i]
    target = sample[1] if isinstance(sample, (tuple, list)) and len(sample) == 2 else None
    if isinstance(target, torch.Tensor) and target.ndim == 0 and not target.is_floating_point():
        target = target.item()
    if (target is None or not isinstance(sample[0], Image.Image) or isinstance(target, bool)
            or not isinstance(target, (int, np.integer))):
        parts = sample if isinstance(sample, (tuple, list)) else [sample]
        kinds = ", ".join(type(s).__name__ for s in parts)
        raise ConfigError(f"torchvision.datasets.{name} is not an image-classification dataset: a sample is "
                          f"({kinds}), not (image, class index); check data.kwargs, or use data=image_folder")
    return sample[0], int(target)


def _label_array(ds) -> np.ndarray | None:
    """The labels of every sample, from the attribute torchvision keeps them in, if any."""
    for attr in ("targets", "labels", "_labels"):
        labels = getattr(ds, attr, None)
        if labels is not None:
            return np.asarray(labels)
    samples = getattr(ds, "_samples", None) or getattr(ds, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple):
        return np.asarray([s[1] for s in samples])
    return None


def _num_classes(ds, name: str) -> int:
    classes = getattr(ds, "classes", None)
    if isinstance(classes, (list, tuple, dict)) and classes:
        return len(classes)
    if isinstance(getattr(ds, "num_classes", None), int):
        return ds.num_classes
    labels = _label_array(ds)
    if labels is not None and labels.ndim == 1 and len(labels):
        return int(labels.max()) + 1
    raise ConfigError(f"cannot tell how many classes torchvision.datasets.{name} has (no classes or labels "
                      "attribute); use data=image_folder with its images instead")


def _arrays(ds, idx: list[int], spec_: DatasetSpec, opts, ref, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) images, laid out as the store keeps them, and int64 labels of samples
    ``idx``: gathered from the dataset's own uint8 array where it keeps one (MNIST, CIFAR,
    SVHN...) and no conversion is asked, else decoded sample by sample."""
    size = spec_.image_size if opts.image_size is not None else None
    fast = _stored_arrays(ds, spec_.in_channels, spec_.image_size)
    h, w = spec_.image_size
    out = empty_images(len(idx), h, w, spec_.in_channels, channels_last)
    if fast is not None:
        for i in range(0, len(idx), 4096):  # a chunk at a time: no second full copy
            out[i:i + 4096] = fast[0][idx[i:i + 4096]]
        return out, fast[1][idx]
    labels = np.empty(len(idx), dtype=np.int64)
    for j, i in enumerate(idx):
        img, labels[j] = _sample(ds, i, opts.name)
        if size is None:
            check_same_size(ref, f"sample {i}", (img.height, img.width))
        out[j] = to_array(img, spec_.in_channels, size)
    return out, labels


def _stored_arrays(ds, channels: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The dataset's whole uint8 array as NHWC and its 1-D labels, when it keeps them and they
    need no conversion; checked against torchvision's own first sample, else None."""
    data, labels = getattr(ds, "data", None), _label_array(ds)
    if isinstance(data, torch.Tensor):
        data = data.numpy()
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or labels is None or labels.ndim != 1:
        return None
    if data.ndim == 3:
        data = data[..., None]
    elif data.ndim == 4 and data.shape[1] in (1, 3) and data.shape[-1] not in (1, 3):
        data = data.transpose(0, 2, 3, 1)  # stored NCHW (SVHN, STL10)
    if data.ndim != 4 or len(data) != len(ds) or len(labels) != len(ds) or data.shape[1:] != (*size, channels):
        return None
    img, target = ds[0]
    if target != labels[0] or not np.array_equal(to_array(img, channels, None), data[0]):
        return None
    return data, labels.astype(np.int64)
