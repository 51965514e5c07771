"""Batches drawn in memory with ``random_resized_crop_flip`` on images that are not square: crops
reach both ends of the long side (a box drawn for the transposed image would stay near the
origin), never leave the image, and each crop comes with its own image's label."""
from __future__ import annotations

import pytest
import torch

from freezeout.data.batches import train_batches


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
