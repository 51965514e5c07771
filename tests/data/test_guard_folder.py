"""An image folder copied to two roots splits alike; image suffixes in any case are images, hidden
files and other files are not; the random crop reaches both extremes of its offsets, and each
offset crops exactly there."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from freezeout.data import load_data
from freezeout.data.batches import augment_draws, shift_and_flip

CPU = torch.device("cpu")


def cfg(root, **kw):
    return {"source": "image_folder", "name": "pngs", "root": str(root), "val_size": 10, **kw}


def write_images(root, suffixes=(".png",), per_class=16):
    """``root/train/<class>/i<k><suffix>`` of distinct 8x8 grey images (the suffixes in turn)."""
    gen = np.random.default_rng(0)
    for name in ("ant", "bee", "cow"):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            suffix = suffixes[k % len(suffixes)]
            img = Image.fromarray(gen.integers(0, 256, (8, 8), dtype=np.uint8))
            img.save(folder / f"i{k:02d}{suffix}", format="JPEG" if suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return root


def test_a_folder_copied_elsewhere_splits_the_same(tmp_path):
    here = write_images(tmp_path / "here")
    there = tmp_path / "somewhere" / "else" / "entirely"
    shutil.copytree(here, there)
    a, b = load_data(cfg(here), CPU), load_data(cfg(there), CPU)
    for split in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(a, split)[:], getattr(b, split)[:]), split  # [:]: a store's images too
    assert len(a.val_y) == 10 and len(set(a.val_y.tolist())) > 1  # a real split, classes mixed
    small = load_data(cfg(there, subset=7), CPU)  # subset: the first of the same order
    assert torch.equal(small.train_y, a.train_y[:7]) and torch.equal(small.val_y, a.val_y)


def test_image_suffixes_count_in_any_case_and_other_files_do_not(tmp_path):
    root = write_images(tmp_path / "mixed", suffixes=(".PNG", ".png", ".Png", ".JPG", ".jpeg"), per_class=10)
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    (root / "train" / "ant" / "Thumbs.db").write_bytes(b"\0" * 8)
    hidden = root / "train" / "bee" / ".cache"
    hidden.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(hidden / "x.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / "cow" / ".thumb.PNG", format="PNG")
    (root / "train" / ".ipynb_checkpoints").mkdir()  # a hidden folder is no class
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / ".ipynb_checkpoints" / "y.png")
    splits = load_data(cfg(root, val_size=6), CPU)
    assert splits.spec.classes == ("ant", "bee", "cow")
    assert len(splits.train_y) + len(splits.val_y) == 30  # 10 per class, the hidden ones left out
    assert sorted(torch.cat([splits.train_y, splits.val_y]).tolist()) == [0] * 10 + [1] * 10 + [2] * 10


def test_the_crop_reaches_both_extremes_of_its_offsets_and_the_flip_both_ways():
    dy, dx, flip = augment_draws(4000, torch.Generator().manual_seed(0), CPU, pad=4)
    for d in (dy, dx):
        assert d.min().item() == 0 and d.max().item() == 8
        assert set(d.tolist()) == set(range(9))
    assert 0.45 < flip.float().mean().item() < 0.55
    assert not torch.equal(dy, dx)  # two draws, not one used twice


@pytest.mark.parametrize("pad", [1, 4])
def test_each_offset_crops_exactly_there(pad):
    n, h, w = 3, 5, 6
    x = torch.arange(n * 2 * h * w, dtype=torch.float32).view(n, 2, h, w) + 1
    fill = torch.tensor([-1.0, -2.0])
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    padded[:, 0][padded[:, 0] == 0], padded[:, 1][padded[:, 1] == 0] = -1.0, -2.0
    dy, dx = torch.tensor([0, 2 * pad, pad]), torch.tensor([2 * pad, 0, pad])
    out = shift_and_flip(x, dy, dx, torch.tensor([False, True, False]), pad, fill)
    assert torch.equal(out[0], padded[0, :, 0:h, 2 * pad:2 * pad + w])  # top right
    assert torch.equal(out[1], padded[1, :, 2 * pad:2 * pad + h, 0:w].flip(2))  # bottom left, mirrored
    assert torch.equal(out[2], x[2])  # centred: the image itself
