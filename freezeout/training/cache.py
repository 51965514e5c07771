"""The frozen-prefix activation cache (``cache_frozen=true``), beyond the paper.

With augmentation off, once groups ``0..k-1`` are frozen (eval mode, fixed weights) their output
for a training image never changes again. The store keeps that output for every training image,
and training runs the rest of the model from it (``model.forward_from(k, x)``). Each freezing
event advances the store by applying the newly frozen groups to the stored tensor, never by
recomputing from the input. Evaluation still runs the whole model. The store lives on the device,
or in pinned host memory (``cache_host=true``), within ``cache_memory_gb``: a stage that would
not fit is not cached, the store stays at the last stage that fit, and the log says so.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger("freezeout")


@torch.no_grad()
def stage_shapes(model: nn.Module, image_shape: tuple[int, ...], device: torch.device) -> list[tuple[int, ...]]:
    """The per-image output shape of every group (``shapes[k]`` is the store's image shape at
    stage ``k + 1``), from one forward pass of a single zero image in eval mode."""
    was_training = model.training
    model.eval()
    x, shapes = torch.zeros((1, *image_shape), device=device), []
    try:
        for k in range(len(model.groups)):
            x = model.forward_from(k, x, stop=k + 1)
            shapes.append(tuple(x.shape[1:]))
    finally:
        model.train(was_training)
    return shapes


class FrozenPrefixCache:
    """The frozen prefix's outputs for every training image: looks like the training tensor to
    the batch drawer (``cache[idx]``, ``len``, ``device``, ``dtype``), at the store's current
    ``stage``."""

    def __init__(self, model: nn.Module, images: torch.Tensor, budget_bytes: float, on_host: bool = False,
                 batch_size: int = 500):
        self.model, self.images, self.budget, self.on_host = model, images, budget_bytes, on_host
        self.batch_size = batch_size
        self.device = images.device
        self.stage, self.features = 0, images  # stage 0: the images themselves, no copy
        self.shapes = stage_shapes(model, tuple(images.shape[1:]), images.device)
        self.full = False  # a stage did not fit the budget: the store stays where it is

    def stage_bytes(self, stage: int) -> int:
        """Bytes of the store at ``stage`` (fp32, every training image)."""
        n = 1
        for d in self.shapes[stage - 1]:
            n *= d
        return 4 * n * len(self.images)

    @torch.no_grad()
    def advance(self, k: int) -> int:
        """Bring the store to stage ``k`` (``k`` groups frozen), one group at a time, as far as the
        budget allows; returns the stage it stands at."""
        while self.stage < k and not self.full:
            size = self.stage_bytes(self.stage + 1)
            if size > self.budget:
                self.full = True
                log.warning("cache_frozen: the store after group %d would take %.2f GB, over cache_memory_gb="
                            "%.2f: it stays at %d group(s); the rest of the frozen prefix is recomputed each step",
                            self.stage, size / 1e9, self.budget / 1e9, self.stage)
                break
            out = None
            for i in range(0, len(self.images), self.batch_size):
                chunk = self.features[i:i + self.batch_size].to(self.device, non_blocking=True)
                y = self.model.forward_from(self.stage, chunk, stop=self.stage + 1)
                if out is None:  # the group's own memory format (convolutions may answer channels-last):
                    out = _empty_like_rows(y, len(self.images), self.on_host)  # same kernels downstream
                out[i:i + self.batch_size] = y
            self.features, self.stage = out, self.stage + 1
        return self.stage

    def __len__(self) -> int:
        return len(self.images)

    @property
    def dtype(self) -> torch.dtype:
        return self.features.dtype

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.features.device != self.device:  # pinned host store: gather there, copy over
            return self.features[idx.cpu()].to(self.device, non_blocking=True)
        return self.features[idx]


def _empty_like_rows(y: torch.Tensor, rows: int, on_host: bool) -> torch.Tensor:
    """An empty store for ``rows`` images shaped and laid out in memory like the batch ``y``."""
    fmt = torch.channels_last if y.dim() == 4 and not y.is_contiguous() and \
        y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    device = "cpu" if on_host else y.device
    out = torch.empty((rows, *y.shape[1:]), dtype=y.dtype, device=device, memory_format=fmt)
    return out.pin_memory() if on_host and y.device.type == "cuda" else out
