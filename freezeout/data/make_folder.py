"""Write real image data for the streaming loader, from Fashion-MNIST (no download needed):

    python -m freezeout.data.make_folder OUT [--size 64] [--train 2000] [--val 0] [--test 0]
                                         [--shards] [--shard-size 1000] [--quality 90]

``OUT/train/<class>/<n>.jpg`` (and ``val/``, ``test/`` when asked): RGB JPEGs of ``--size`` pixels
square, the 28x28 grey images upsampled (bicubic) and tinted per image, so that the three channels
differ; 10 classes named as Fashion-MNIST's. With ``--shards``, also ``OUT/shards/train/*.tar``
(WebDataset: ``KEY.jpg`` and ``KEY.cls``, ``--shard-size`` samples a shard) and
``OUT/shards/classes.txt``. Train with ``data=image_folder data.root=OUT`` or ``data=shards
data.root=OUT/shards``. Training images are Fashion-MNIST's first, test images its test split.
A 20,000-image 128-pixel folder (``--size 128 --train 20000``) is about 4 GB as float32.
"""
from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def fashion_arrays(root: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST's (train images, train labels, test images, test labels), uint8 and int64."""
    import torchvision

    from .builtin import provide_fashion_mnist

    if root is None:  # unpacked from the system copy into a folder of its own, removed after
        with tempfile.TemporaryDirectory(prefix="freezeout-fmnist-") as tmp:
            return fashion_arrays(Path(tmp))
    provide_fashion_mnist(Path(root), download=False)
    train = torchvision.datasets.FashionMNIST(str(root), train=True, download=False)
    test = torchvision.datasets.FashionMNIST(str(root), train=False, download=False)
    return train.data.numpy(), train.targets.numpy(), test.data.numpy(), test.targets.numpy()


def to_rgb(grey: np.ndarray, size: int, rng: np.random.Generator) -> Image.Image:
    """A 28x28 grey image as a ``size``-pixel RGB image with a random tint."""
    img = Image.fromarray(grey).resize((size, size), Image.BICUBIC)
    tint = rng.uniform(0.6, 1.0, size=3)
    rgb = (np.asarray(img, dtype=np.float32)[..., None] * tint).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write(out: Path, size: int = 64, train: int = 2000, val: int = 0, test: int = 0, shards: bool = False,
          shard_size: int = 1000, quality: int = 90, seed: int = 0, fmnist_root: Path | None = None) -> dict:
    """Write the folder (and shards); returns how many images each split got."""
    x, y, tx, ty = fashion_arrays(fmnist_root)
    if train + val > len(x) or test > len(tx):
        raise SystemExit(f"error: Fashion-MNIST has {len(x)} training and {len(tx)} test images; asked for "
                         f"{train} + {val} and {test}")
    rng = np.random.default_rng(seed)
    plan = {"train": (x[:train], y[:train]), "val": (x[train:train + val], y[train:train + val]),
            "test": (tx[:test], ty[:test])}
    counts = {}
    for split, (images, labels) in plan.items():
        if not len(images):
            continue
        samples = []
        for n, (img, label) in enumerate(zip(images, labels)):
            data = encode(to_rgb(img, size, rng), quality)
            path = out / split / CLASSES[label] / f"{n:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            samples.append((f"{n:06d}", data, int(label)))
        if shards:
            _write_shards(out / "shards" / split, samples, shard_size)
        counts[split] = len(samples)
    if shards:
        (out / "shards" / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    return counts


def _write_shards(folder: Path, samples: list, shard_size: int) -> None:
    """WebDataset shards (its own TarWriter when the package is installed, else the same tar by hand)."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(0, len(samples), shard_size):
        path = folder / f"{s // shard_size:05d}.tar"
        try:
            import webdataset as wds
        except ImportError:
            wds = None
        if wds is not None:
            with wds.TarWriter(str(path)) as sink:
                for key, data, label in samples[s:s + shard_size]:
                    sink.write({"__key__": key, "jpg": data, "cls": str(label).encode()})
            continue
        with tarfile.open(path, "w") as tar:
            for key, data, label in samples[s:s + shard_size]:
                for ext, payload in (("jpg", data), ("cls", str(label).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m freezeout.data.make_folder", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=64, help="pixels, square (default 64)")
    p.add_argument("--train", type=int, default=2000, help="training images (default 2000)")
    p.add_argument("--val", type=int, default=0, help="validation images in val/ (default 0: held out by the run)")
    p.add_argument("--test", type=int, default=0, help="test images in test/ (default 0: none)")
    p.add_argument("--shards", action="store_true", help="also write WebDataset tar shards in OUT/shards")
    p.add_argument("--shard-size", type=int, default=1000, help="samples a shard (default 1000)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tints (default 0)")
    a = p.parse_args(argv)
    counts = write(a.out, a.size, a.train, a.val, a.test, a.shards, a.shard_size, a.quality, a.seed)
    print(f"wrote {', '.join(f'{n} {s}' for s, n in counts.items())} images of {a.size}x{a.size} to {a.out}"
          + (f" (and shards in {a.out / 'shards'})" if a.shards else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
