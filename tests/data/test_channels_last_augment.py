"""A channels-last store's batches stay channels-last through augmentation (both recipes), with
the same values as the NCHW store's, so a channels-last step copies nothing to convert them; a
resumed epoch's order, loaded on the host, is used on the store's device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from freezeout.data.batches import train_batches
from freezeout.data.store import to_store
from freezeout.models import build_model
from freezeout.training.step import TrainStep


def stores():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 16, 16, 3), dtype=np.uint8)  # (N, H, W, C) RGB: the layouts differ
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    return (to_store(images, mean, std, torch.device("cpu")),
            to_store(images, mean, std, torch.device("cpu"), channels_last=True))


def epoch(store, augment, perm=None):
    labels = torch.arange(len(store)) % 10
    generator = torch.Generator().manual_seed(7)
    return list(train_batches(store, labels, 32, generator, augment, fill=-1.5, perm=perm))


@pytest.mark.parametrize("augment", ["pad_crop_flip", "random_resized_crop_flip", False])
def test_channels_last_survives_augmentation(augment, one_thread):
    nchw, nhwc = stores()
    plain, last = epoch(nchw, augment), epoch(nhwc, augment)
    assert len(last) == 3
    for (x, y), (xl, yl) in zip(plain, last):
        assert xl.is_contiguous(memory_format=torch.channels_last) and not xl.is_contiguous()
        assert torch.equal(y, yl)
        torch.testing.assert_close(xl, x, rtol=0, atol=1e-6)  # the same images, another layout
    torch.manual_seed(0)
    model = build_model("densenet", 10, 3, depth=10, growth_rate=4).to(memory_format=torch.channels_last)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.01), channels_last=True)
    for x, y in last:
        step(x, y)
    assert step.format_copies == 0


def test_a_resumed_order_on_the_host_gives_the_same_batches(one_thread):
    nchw, _ = stores()
    perm = torch.randperm(len(nchw), generator=torch.Generator().manual_seed(3))
    for (x, y), (xr, yr) in zip(epoch(nchw, "pad_crop_flip", perm), epoch(nchw, "pad_crop_flip", perm.clone())):
        assert torch.equal(x, xr) and torch.equal(y, yr)
