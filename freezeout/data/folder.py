"""Your own images (``data=image_folder data.root=DIR``): ``DIR/train/<class>/<images>``, and
optionally ``DIR/val/`` and ``DIR/test/`` with the same class folders.

Class names sorted are the label order. Without ``val/``, the training images are put in a fixed
pseudo-random order (by the SHA-1 of each path relative to ``train/``, so classes are mixed and
the order is the same for every seed and machine) and the last ``val_size`` of that order are the
validation split; ``subset`` takes the first N of the rest. Kept in memory, images are decoded
with PIL, converted to ``channels`` and resized to ``image_size`` when those are set; streamed
(:mod:`freezeout.data.loader`), the loader's workers decode them as they go.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .common import DatasetSpec, Raw, check_val_size, fixed_order, root_of, wanted_channels, wanted_size
from .images import IMAGE_EXTENSIONS, BadImage, bad_input_error, channels_of, check_same_size, open_image, to_array
from .store import empty_images

Items = list[tuple[Path, int]]  # (image file, label)


@dataclass
class Listing:
    classes: list[str]
    train: Items  # sorted by class, then path
    val: Items | None  # None: no val/ folder
    test: Items | None  # None: no test/ folder


def spec(opts) -> DatasetSpec:
    """Lists the files and opens one image (for its channels and size); decodes nothing else."""
    root = root_of(opts)
    listing = list_folder(root)
    first = listing.train[0][0]
    img = _first_image(first)
    channels = wanted_channels(opts) or channels_of(img)
    size = wanted_size(opts) or (img.height, img.width)
    if listing.val is None:
        available, n_val = check_val_size(opts, len(listing.train), str(root / "train")), opts.val_size
    else:
        available, n_val = len(listing.train), len(listing.val)
    n_test = len(listing.test) if listing.test is not None else 0
    return DatasetSpec(len(listing.classes), channels, size, available, n_val, n_test,
                       classes=tuple(listing.classes))


def split_items(opts, n_train: int, with_test: bool) -> tuple[Items, Items, Items | None]:
    """The (file, label) lists of the training images kept, the validation and (``with_test``)
    the test images, in the fixed order both loaders read them in."""
    listing = list_folder(root_of(opts))
    train_dir = root_of(opts) / "train"
    order = fixed_order([p.relative_to(train_dir).as_posix() for p, _ in listing.train])
    train = [listing.train[i] for i in order]
    if listing.val is None:
        train, val = train[:-opts.val_size], train[-opts.val_size:]
    else:
        val = listing.val
    return train[:n_train], val, listing.test if with_test else None


def load(opts, spec_: DatasetSpec, n_train: int, with_test: bool, channels_last: bool = False) -> Raw:
    """Decode the kept training images, the validation and (``with_test``) the test images into
    arrays laid out as the store keeps them."""
    train, val, test = split_items(opts, n_train, with_test)
    size = spec_.image_size if opts.image_size is not None else None
    first = list_folder(root_of(opts)).train[0][0]
    img = _first_image(first)
    ref = (str(first), (img.height, img.width))  # the image the spec was read from
    bad: list[str] = []
    splits = [_decode(items, spec_.in_channels, size, ref, channels_last, opts.skip_bad_images, bad,
                      read=sum(len(i) for i in (train, val)[:k]))
              for k, items in enumerate((train, val, test) if with_test else (train, val))]
    return Raw(*splits[0], *splits[1], *(splits[2] if with_test else (None, None)), bad=bad)


def stream_items(opts, spec_: DatasetSpec, n_train: int, with_test: bool) -> dict:
    """Each split's files and labels for the streaming loader: ``{split: (reader, labels)}``."""
    from .stream import FileReader

    splits = dict(zip(("train", "val", "test"), split_items(opts, n_train, with_test)))
    return {name: (FileReader([p for p, _ in items]), np.asarray([label for _, label in items], dtype=np.int64))
            for name, items in splits.items() if items is not None}


def _first_image(path: Path):
    try:
        return open_image(path)
    except BadImage as e:
        raise bad_input_error(e, 0) from None


def _decode(items: Items, channels: int, size: tuple[int, int] | None, ref, channels_last: bool, skip: bool,
            bad: list[str], read: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) images and int64 labels; ``size`` None: every image must match ``ref``.
    An unreadable image stops the load naming it (and the images read before it: ``read`` in the
    splits before this one), or, with ``skip``, is left out and its name added to ``bad``."""
    h, w = size or ref[1]
    out = empty_images(len(items), h, w, channels, channels_last)
    labels = []
    for path, label in items:
        try:
            img = open_image(path)
        except BadImage as e:
            if not skip:
                raise bad_input_error(e, read + len(labels) + len(bad)) from None
            bad.append(e.name)
            continue
        if size is None:
            check_same_size(ref, str(path), (img.height, img.width))
        out[len(labels)] = to_array(img, channels, size)
        labels.append(label)
    return out[:len(labels)], np.asarray(labels, dtype=np.int64)


def list_folder(root: Path) -> Listing:
    """The class folders and image files of ``root``; every layout mistake is a ConfigError."""
    train_dir = root / "train"
    if not train_dir.is_dir():
        what = "does not exist" if not root.exists() else "has no train/ folder"
        raise ConfigError(f"data.root={str(root)!r} {what}: data=image_folder needs DIR/train/<class>/<images> "
                          "(and optionally DIR/val/ and DIR/test/ alike)")
    classes = _class_folders(train_dir)
    if len(classes) < 2:
        raise ConfigError(f"{train_dir} has {len(classes)} class folder(s): classification needs at least 2 "
                          "(one folder per class, holding its images)")
    splits = {"train": _items(train_dir, classes)}
    for name in ("val", "test"):
        split_dir = root / name
        if not split_dir.is_dir():
            splits[name] = None
            continue
        found = _class_folders(split_dir)
        if found != classes:
            missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
            raise ConfigError(f"{split_dir} must have the class folders of {train_dir}: missing {missing}, "
                              f"not in train {extra}")
        splits[name] = _items(split_dir, classes)
    return Listing(classes, splits["train"], splits["val"], splits["test"])


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _items(split_dir: Path, classes: list[str]) -> Items:
    items: Items = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (split_dir / name).rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(split_dir).parts))
        if not files:
            raise ConfigError(f"class folder {split_dir / name} holds no images "
                              f"({', '.join(IMAGE_EXTENSIONS)})")
        items.extend((f, label) for f in files)
    return items
