"""The store's batches come in the memory format the model runs in, with several channels too (with
one channel, as Fashion-MNIST's, NCHW and NHWC strides cannot be told apart)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from freezeout.data.store import empty_images, to_store

CPU = torch.device("cpu")
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


@pytest.mark.parametrize("channels_last", [False, True])
def test_rgb_batches_are_nhwc_exactly_when_asked(channels_last):
    images = empty_images(6, 5, 4, 3, channels_last)
    images[...] = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    store = to_store(images, MEAN, STD, CPU, channels_last=channels_last)
    nchw = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    expected = (nchw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)

    for batch in (store[torch.tensor([4, 1, 2])], store[1:5], store.float()):
        assert batch.shape[1:] == (3, 5, 4) and batch.dtype == torch.float32
        assert batch.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert batch.is_contiguous() == (not channels_last)
    assert torch.allclose(store[torch.tensor([4, 1, 2])], expected[[4, 1, 2]])
    assert torch.allclose(store.float(), expected)
