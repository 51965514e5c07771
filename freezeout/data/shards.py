"""WebDataset tar shards (``data=shards data.root=DIR``): ``DIR/train/*.tar``, and optionally
``DIR/val/*.tar`` and ``DIR/test/*.tar``; ``DIR/classes.txt`` may name the classes, one a line in
label order. A sample is the tar members sharing a key (the member's path up to the first dot of
its name, as WebDataset groups them): an image (``KEY.jpg``, ``.png``, ``.webp``...) and its class
index as text (``KEY.cls``). ``python -m freezeout.data.make_folder --shards`` writes such shards.

Shards are uncompressed tars, indexed once (the member headers alone are read, and each label):
an image is then one seek away, so an epoch reads them in any order, as an image folder's files.
Validation without ``val/``: the last ``val_size`` training samples of a fixed pseudo-random order
(by the SHA-1 of shard name and key), ``subset`` the first N of the rest, as for image folders.
"""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .common import DatasetSpec, Raw, check_val_size, fixed_order, root_of, wanted_channels, wanted_size
from .images import BadImage, bad_input_error, decode_bytes, stored_channels
from .store import empty_images
from .stream import TarReader

IMAGE_EXTS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "ppm", "pgm", "tif", "tiff"}
_KEY = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")  # WebDataset's base_plus_ext
_INDEX: dict[tuple, "Split"] = {}


@dataclass
class Split:
    """A split's samples over its shards, in shard order: where each image is, and its label."""

    shards: list[Path]
    shard: np.ndarray  # index into shards, per sample
    offsets: np.ndarray  # byte offset of each image in its shard
    sizes: np.ndarray  # bytes of each image
    keys: list[str]
    labels: np.ndarray

    def take(self, idx) -> "Split":
        idx = np.asarray(idx, dtype=np.int64)
        return Split(self.shards, self.shard[idx], self.offsets[idx], self.sizes[idx],
                     [self.keys[i] for i in idx], self.labels[idx])

    def reader(self) -> TarReader:
        return TarReader(self.shards, self.shard, self.offsets, self.sizes, self.keys)


def spec(opts) -> DatasetSpec:
    """Indexes the shards and decodes the first image (for its channels and size)."""
    root = root_of(opts)
    splits, classes = _splits(root)
    train = splits["train"]
    first = train.reader()
    try:
        stored, stored_size = stored_channels(first.read(0), first.name(0))
    except BadImage as e:
        raise bad_input_error(e, 0) from None
    channels = wanted_channels(opts) or stored
    size = wanted_size(opts) or stored_size
    if splits["val"] is None:
        available, n_val = check_val_size(opts, len(train.keys), str(root / "train")), opts.val_size
    else:
        available, n_val = len(train.keys), len(splits["val"].keys)
    n_test = len(splits["test"].keys) if splits["test"] is not None else 0
    return DatasetSpec(len(classes), channels, size, available, n_val, n_test, classes=tuple(classes))


def split_items(opts, n_train: int, with_test: bool) -> tuple[Split, Split, Split | None]:
    """The training samples kept, the validation and (``with_test``) the test samples."""
    splits, _ = _splits(root_of(opts))
    train = splits["train"]
    order = fixed_order([f"{train.shards[s].name}/{k}" for s, k in zip(train.shard, train.keys)])
    if splits["val"] is None:
        val, order = train.take(order[-opts.val_size:]), order[:-opts.val_size]
    else:
        val = splits["val"]
    return train.take(order[:n_train]), val, splits["test"] if with_test else None


def stream_items(opts, spec_: DatasetSpec, n_train: int, with_test: bool) -> dict:
    """Each split's reader and labels for the streaming loader."""
    parts = dict(zip(("train", "val", "test"), split_items(opts, n_train, with_test)))
    return {name: (s.reader(), s.labels) for name, s in parts.items() if s is not None}


def load(opts, spec_: DatasetSpec, n_train: int, with_test: bool, channels_last: bool = False) -> Raw:
    """Every split decoded into memory (``torchvision.io``), resized to ``image_size`` when set."""
    from torchvision.transforms.v2 import functional as TF

    parts = split_items(opts, n_train, with_test)
    h, w = spec_.image_size
    out, bad, read = [], [], 0
    for part in (p for p in parts if p is not None):
        reader, x = part.reader(), empty_images(len(part.keys), h, w, spec_.in_channels, channels_last)
        labels = []
        for i in range(len(part.keys)):
            try:
                img = _decode(reader, i, spec_.in_channels)
            except BadImage as e:
                if not opts.skip_bad_images:
                    raise bad_input_error(e, read) from None
                bad.append(e.name)
                continue
            if tuple(img.shape[1:]) != (h, w):
                if opts.image_size is None:
                    raise ConfigError(f"images differ in size and data.image_size is not set: {reader.name(i)} is "
                                      f"{img.shape[1]}x{img.shape[2]}, the first is {h}x{w} (HxW); set data.image_size")
                img = TF.resize(img, [h, w], antialias=True)
            x[len(labels)] = img.permute(1, 2, 0).numpy()
            labels.append(part.labels[i])
            read += 1
        out.append((x[:len(labels)], np.asarray(labels, dtype=np.int64)))
    return Raw(*out[0], *out[1], *(out[2] if with_test else (None, None)), bad=bad)


def _decode(reader: TarReader, i: int, channels: int):
    try:
        return decode_bytes(reader.read(i), reader.name(i), channels)
    except OSError as e:
        raise BadImage(reader.name(i), f"{type(e).__name__}: {e}") from None


def _splits(root: Path) -> tuple[dict, list[str]]:
    """Every split's index and the class names; each layout mistake is a ConfigError naming it."""
    if not (root / "train").is_dir():
        what = "does not exist" if not root.exists() else "has no train/ folder"
        raise ConfigError(f"data.root={str(root)!r} {what}: data=shards needs DIR/train/*.tar (and optionally "
                          "DIR/val/*.tar and DIR/test/*.tar)")
    splits = {name: _index_split(root / name) if (root / name).is_dir() else None for name in ("train", "val", "test")}
    names_file = root / "classes.txt"
    if names_file.exists():
        classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    else:
        classes = [str(c) for c in range(int(splits["train"].labels.max()) + 1)]
    for name, split in splits.items():
        if split is not None and (split.labels.min() < 0 or split.labels.max() >= len(classes)):
            bad = split.keys[int(np.argmax((split.labels < 0) | (split.labels >= len(classes))))]
            raise ConfigError(f"{root / name}: sample {bad} has a class index outside [0, {len(classes)}) "
                              f"({names_file.name if names_file.exists() else 'the largest index + 1'} classes)")
    counts = np.bincount(splits["train"].labels, minlength=len(classes))
    if (counts == 0).any():
        empty = int(np.argmin(counts))
        raise ConfigError(f"class {empty} ({classes[empty]!r}) has no training samples in the shards of "
                          f"{root / 'train'}: every class needs some (or drop it from {names_file.name})")
    if len(classes) < 2:
        raise ConfigError(f"the shards of {root / 'train'} hold {len(classes)} class: classification needs at least 2")
    return splits, classes


def _index_split(folder: Path) -> Split:
    shards = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.name.endswith((".tar", ".tar.gz", ".tgz")))
    if not shards:
        raise ConfigError(f"{folder} holds no .tar shards")
    key = (str(folder), tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in shards))
    if key not in _INDEX:
        parts = [_index_shard(p) for p in shards]
        _INDEX[key] = Split(shards, np.concatenate([np.full(len(k), s) for s, (k, *_) in enumerate(parts)]),
                            np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                            [k for p in parts for k in p[0]], np.concatenate([p[3] for p in parts]))
    return _INDEX[key]


def _index_shard(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """A shard's sample keys, image offsets and sizes, and labels, from its member headers."""
    if not path.name.endswith(".tar"):
        raise ConfigError(f"{path} is compressed: data=shards reads uncompressed .tar shards (an image is read "
                          "in place, at its offset)")
    samples: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                match = _KEY.match(m.name) if m.isfile() else None
                if match:
                    samples.setdefault(match.group(1), {})[match.group(2).lower()] = m
            labels = {k: tar.extractfile(s["cls"]).read() for k, s in samples.items() if "cls" in s}
    except (tarfile.TarError, OSError) as e:
        raise ConfigError(f"cannot read the shard {path} ({type(e).__name__}: {e})") from None
    if not samples:
        raise ConfigError(f"the shard {path} holds no samples: remove it or write it again")
    keys, offsets, sizes, classes = [], [], [], []
    for k, s in samples.items():
        image = next((s[e] for e in s if e in IMAGE_EXTS), None)
        if image is None or k not in labels:
            raise ConfigError(f"{path}: sample {k} has no {'image' if image is None else 'class (.cls)'} "
                              f"(it has {', '.join(sorted(s))}); a sample needs KEY.jpg (or .png...) and KEY.cls")
        try:
            classes.append(int(labels[k].decode().strip()))
        except ValueError:
            raise ConfigError(f"{path}: {k}.cls holds {labels[k][:20]!r}, not a class index") from None
        keys.append(k)
        offsets.append(image.offset_data)
        sizes.append(image.size)
    return keys, np.asarray(offsets, dtype=np.int64), np.asarray(sizes, dtype=np.int64), np.asarray(classes, np.int64)
