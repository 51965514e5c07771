"""A split kept in memory: its images as uint8 on the device, in the memory format the model runs
in, converted and normalised per batch when indexed. 4x less memory than float32 tensors, and
the same values: a batch is the float32 tensor the whole split used to be, indexed (the same
elementwise operations on the same pixels), so training on it is bitwise what it was.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: Rows copied at a time when a store is built from host images that cannot be used in place:
#: the load then holds the source, the store and one chunk (about 64 MB) at most.
CHUNK_BYTES = 64 * 2**20


class ImageStore:
    """uint8 images (N, C, H, W) and the per-channel ``mean`` and ``std`` (in [0, 1] pixel units).

    Indexed like the float tensor it replaces (``store[idx]`` with an index tensor or a slice;
    ``len``, ``shape``, ``device``, ``dtype``), it answers normalised float32 images: the train
    loop, evaluation and the frozen-prefix cache read it unchanged. ``float()`` gives the whole
    split at once (4x the stored bytes: for small data and tests)."""

    def __init__(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool = False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"an ImageStore holds uint8 (N, C, H, W) images, not {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.norm_mean = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        self.norm_std = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        self.channels_last = channels_last  # the memory format of the batches it gives

    def normalise(self, u8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32, scaled to [0, 1] and normalised per channel (as ever)."""
        return normalise_batch(u8, self.norm_mean, self.norm_std, self.channels_last)

    def __getitem__(self, idx) -> torch.Tensor:
        rest = ()
        if isinstance(idx, tuple):  # images first, then within them (channels: after normalising)
            idx, rest = idx[0], idx[1:]
        x = self.normalise(self.images[idx][None])[0] if isinstance(idx, int) else self.normalise(self.images[idx])
        return x[rest] if rest else x

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> torch.Size:
        return self.images.shape

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def dtype(self) -> torch.dtype:
        """What indexing answers (float32), not what is stored (uint8)."""
        return torch.float32

    @property
    def nbytes(self) -> int:
        """Bytes really stored."""
        return self.images.numel() * self.images.element_size()

    def float(self) -> torch.Tensor:
        """Every image as normalised float32 (N, C, H, W)."""
        return self[:]


def normalise_batch(u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1], normalised per channel (``mean``, ``std``: shaped
    (1, C, 1, 1) on the batch's device), in the memory format the model runs in."""
    x = u8.float().div_(255)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def empty_images(n: int, h: int, w: int, c: int, channels_last: bool) -> np.ndarray:
    """An uninitialised (N, H, W, C) uint8 array laid out in memory as the store will be (NCHW,
    or NHWC for channels-last), so that a source decoding into it is stored without a copy."""
    if channels_last:
        return np.empty((n, h, w, c), dtype=np.uint8)
    return np.empty((n, c, h, w), dtype=np.uint8).transpose(0, 2, 3, 1)


def to_store(images: np.ndarray | torch.Tensor, mean, std, device: torch.device,
             channels_last: bool = False) -> ImageStore:
    """uint8 (N, H, W, C) images as an :class:`ImageStore` on ``device``: in place when they are
    on the CPU already laid out as wanted, else copied chunk by chunk into one allocation (the
    load never holds a second full copy, nor any float version)."""
    t = torch.as_tensor(images).permute(0, 3, 1, 2)  # a view: (N, C, H, W)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if device.type == "cpu" and t.is_contiguous(memory_format=fmt):
        return ImageStore(t, mean, std, channels_last)
    out = torch.empty(t.shape, dtype=torch.uint8, device=device, memory_format=fmt)
    per = max(1, CHUNK_BYTES // max(1, t[0].numel()))
    for i in range(0, len(t), per):
        out[i:i + per].copy_(t[i:i + per], non_blocking=False)
    return ImageStore(out, mean, std, channels_last)
