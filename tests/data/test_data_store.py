"""Data kept in memory as uint8 (freezeout/data/store.py): 4x less memory than float32 tensors,
the same batches bit for bit (plain, augmented, channels-last), the budget counting the bytes
stored, and the augmentation recipes by name (``data.augment=true|false`` still meaning what it
did)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from freezeout.data import augment_recipe, load_data, train_batches
from freezeout.data.builtin import _fashion_rows
from freezeout.data.common import normalise
from freezeout.data.recipes import random_resized_boxes, resized_crops
from freezeout.data.store import empty_images, to_store
from freezeout.errors import ConfigError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fmnist(fmnist_root):
    opts = {"name": "fashion_mnist", "root": str(fmnist_root), "subset": 600, "val_size": 200}
    return opts, load_data(opts, CPU)


def test_store_is_uint8_and_a_quarter_of_float32(fmnist):
    _, data = fmnist
    assert data.train_x.images.dtype == torch.uint8 and data.train_x.dtype == torch.float32
    assert data.train_x.nbytes == 600 * 28 * 28 and data.val_x.nbytes == 200 * 28 * 28
    assert data.train_x.float().nbytes == 4 * data.train_x.nbytes  # what every split used to take


@pytest.mark.parametrize("channels_last", [False, True])
def test_batches_equal_the_float_tensors_bit_for_bit(fmnist, fmnist_root, channels_last):
    """The store's batches, plain and pad-crop-flipped, are the former float32 split's batches."""
    opts, data = fmnist
    store = load_data(opts, CPU, channels_last=channels_last).train_x
    images, _ = _fashion_rows(fmnist_root, True, 0, 600)
    old = normalise(images, data.spec, CPU)  # the whole split as float32, as it used to be kept
    idx = torch.randperm(600, generator=torch.Generator().manual_seed(1))[:64]
    assert torch.equal(store[idx], old[idx]) and torch.equal(store[10:20], old[10:20])
    assert torch.equal(store[3, 0, 5], old[3, 0, 5])
    if channels_last:
        assert store[idx].is_contiguous(memory_format=torch.channels_last)
    for augment in (False, True):
        ours = train_batches(store, data.train_y, 50, torch.Generator().manual_seed(0), augment, data.spec.black)
        theirs = train_batches(old, data.train_y, 50, torch.Generator().manual_seed(0), augment, data.spec.black)
        for (a, ya), (b, yb) in zip(ours, theirs):
            assert torch.equal(a, b) and torch.equal(ya, yb)


def test_store_is_built_in_place_when_laid_out_as_kept():
    rng = np.random.default_rng(0)
    nchw = empty_images(5, 4, 6, 3, channels_last=False)
    nchw[...] = rng.integers(0, 256, nchw.shape, dtype=np.uint8)
    store = to_store(nchw, (0.5,) * 3, (0.25,) * 3, CPU)
    assert store.images.data_ptr() == torch.from_numpy(nchw.base).data_ptr()  # no copy
    moved = to_store(nchw, (0.5,) * 3, (0.25,) * 3, CPU, channels_last=True)  # another layout: copied
    assert moved.images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(moved.images, store.images)


def test_budget_counts_the_uint8_bytes(fmnist_root):
    opts = {"name": "fashion_mnist", "root": str(fmnist_root), "subset": 1000, "val_size": 500, "loader": "memory"}
    stored = 1500 * 28 * 28 / 1e9  # GB as uint8
    load_data({**opts, "max_memory_gb": stored * 1.001}, CPU)
    with pytest.raises(ConfigError, match=r"as uint8 \(1500 images of 1x28x28"):
        load_data({**opts, "max_memory_gb": stored * 0.999}, CPU)


def test_recipes_by_name_and_as_before():
    assert augment_recipe(True) == augment_recipe("true") == augment_recipe("pad_crop_flip") == "pad_crop_flip"
    assert augment_recipe(False) == augment_recipe("False") == augment_recipe(None) == "none"
    assert augment_recipe("random_resized_crop_flip") == "random_resized_crop_flip"
    with pytest.raises(ConfigError, match="data.augment='crop' is unknown; allowed: pad_crop_flip, "):
        augment_recipe("crop")


def test_random_resized_crop_on_the_device():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    whole = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2)
    same = resized_crops(x, whole, torch.tensor([False, True]))
    assert torch.allclose(same[0], x[0], atol=1e-4) and torch.allclose(same[1], x[1].flip(2), atol=1e-4)
    quarter = resized_crops(x, torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2), torch.tensor([False, False]))
    assert quarter[0, 0, 0, 0] == pytest.approx(x[0, 0, 0, 0], abs=0.5) and quarter[0, 0, -1, -1] < x[0, 0, 4, 4]
    boxes = random_resized_boxes(500, 32, 24, torch.Generator().manual_seed(0), CPU)
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 24).all()
    area = h * w / (32 * 24)
    assert area.min() >= 0.05 and area.max() <= 1.0 and area.std() > 0.1  # 8%-100% of the area, varied
