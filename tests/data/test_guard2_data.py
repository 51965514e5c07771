"""Batches drawn in memory with ``random_resized_crop_flip`` on images that are not square: crops
reach both ends of the long side (a box drawn for the transposed image would stay near the
origin), never leave the image, and each crop comes with its own image's label. An unreadable
image in an image folder's train/ or val/ names exactly how many images were read before it; a
val/ or test/ folder that lacks a class of train/ is refused, naming it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from freezeout.data import load_data
from freezeout.data.batches import train_batches
from freezeout.data.common import options
from freezeout.data.folder import split_items
from freezeout.errors import ConfigError


@pytest.mark.parametrize("h, w", [(8, 48), (48, 8)])
def test_resized_crops_of_a_long_image_reach_both_ends_of_it(h, w):
    n = 64
    position = torch.arange(max(h, w), dtype=torch.float32)
    ramp = position.view(1, -1).expand(h, w) if w > h else position.view(-1, 1).expand(h, w)  # along the long side
    x = (ramp + 1000.0 * torch.arange(n).view(n, 1, 1)).unsqueeze(1)  # image i: its ramp, offset by 1000 i
    y = torch.arange(n)
    seen = []
    for batch, labels in train_batches(x, y, 16, torch.Generator().manual_seed(0), "random_resized_crop_flip"):
        assert batch.shape == (16, 1, h, w)
        along = batch - 1000.0 * labels.view(-1, 1, 1, 1).float()  # the crop's positions, if its label is right
        assert along.min() >= -1e-3 and along.max() <= max(h, w) - 1 + 1e-3
        seen.append(along)
    along = torch.cat(seen)
    assert along.amin(dim=(1, 2, 3)).min() < 2 and along.amax(dim=(1, 2, 3)).max() > max(h, w) - 3


def write_folder(root, splits, classes=("ant", "bee")):
    """``root/<split>/<class>/<k>.png``: ``splits`` maps each split to its images per class."""
    gen = np.random.default_rng(0)
    for split, per_class in splits.items():
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for k in range(per_class):
                Image.fromarray(gen.integers(0, 256, (6, 6), dtype=np.uint8)).save(root / split / name / f"{k}.png")
    return {"source": "image_folder", "name": "pngs", "root": str(root), "loader": "memory"}


def test_a_bad_image_says_how_many_were_read_before_it_in_train_and_in_val(tmp_path):
    opts = write_folder(tmp_path, {"train": 6, "val": 3})
    train, val, _ = split_items(options(opts), 12, False)
    cases = [(val, 4, 12 + 4), (train, 5, 5)]  # val is read after the 12 training images
    for items, index, read in cases:
        bad = items[index][0]
        good = bad.read_bytes()
        bad.write_bytes(good[:60])
        with pytest.raises(ConfigError, match=rf"; {read} images were read before it: "):
            load_data(opts, torch.device("cpu"))
        bad.write_bytes(good)


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_split_that_lacks_a_class_of_train_is_refused_naming_it(tmp_path, split):
    opts = write_folder(tmp_path, {"train": 4, split: 2}, classes=("ant", "bee", "cow"))
    for png in (tmp_path / split / "bee").iterdir():
        png.unlink()
    (tmp_path / split / "bee").rmdir()
    refused = rf"{split} must have the class folders of .*: missing \['bee'\], not in train \[\]$"
    with pytest.raises(ConfigError, match=refused):
        load_data(opts, torch.device("cpu"), with_test=True)
