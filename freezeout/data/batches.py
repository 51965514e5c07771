"""Batches and augmentation as tensor ops on the device (as in airbench): no DataLoader workers.
The images come from a store (:class:`~freezeout.data.store.ImageStore`: uint8 kept, normalised
float32 given per batch) or from anything indexed alike (the frozen-prefix cache's store)."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .recipes import augment_recipe, random_resized_boxes, resized_crops

Fill = float | Sequence[float] | torch.Tensor


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, fill: Fill = 0.0) -> torch.Tensor:
    """Random crop after padding by ``pad`` pixels, and random horizontal flip, per image.

    ``fill`` is the padding value, per channel or for all: pass ``spec.black`` (the normalised
    value of a black pixel) to pad as the paper does, with torchvision's ``RandomCrop(32,
    padding=4)`` on the image before ``Normalize``; 0 pads with the mean colour instead.
    """
    return shift_and_flip(x, *augment_draws(len(x), generator, x.device, pad), pad, fill)


def augment_draws(n: int, generator: torch.Generator, device: torch.device, pad: int = 4):
    """The random offsets ``(dy, dx)`` and flips of ``n`` images, in the generator's order."""
    dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    return dy, dx, torch.rand(n, device=device, generator=generator) < 0.5


def shift_and_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int,
                   fill: Fill = 0.0) -> torch.Tensor:
    """Image ``i`` padded by ``pad`` with ``fill``, cropped back to its size at offset
    (``dy[i]``, ``dx[i]``) of the padded image, then mirrored if ``flip[i]``. A channels-last
    batch comes back channels-last (gathered in NHWC order: no copy to convert it back)."""
    n, c, h, w = x.shape
    nhwc = is_channels_last(x)
    padded = torch.empty((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=x.device,
                         memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    padded.copy_(torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1).expand_as(padded))
    padded[:, :, pad:pad + h, pad:pad + w] = x
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    if nhwc:  # (n, h, w, c), contiguous: as NCHW, channels-last strides
        out = padded.permute(0, 2, 3, 1)[batch, rows, cols]
        return torch.where(flip[:, None, None, None], out.flip(2), out).permute(0, 3, 1, 2)
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch[..., None], chans, rows[:, None], cols[:, None]]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a 4-D batch is laid out channels-last (NHWC strides) and not also NCHW."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def iterations_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped, so every step sees ``batch_size``)."""
    return n // batch_size


def batch_stream(x, y: torch.Tensor, batch_size: int, seed: int, augment: bool | str, fill: Fill = 0.0,
                 shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches, epoch after epoch, from their own generator (equal seeds give
    equal batches): for measurements that must not touch a run's random streams. ``shard``: as
    for :func:`train_batches`."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    while True:
        yield from train_batches(x, y, batch_size, generator, augment, fill, shard=shard)


def epoch_permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The order of one epoch's ``n`` training images, drawn from the run's data generator."""
    return torch.randperm(n, device=device, generator=generator)


def train_batches(x, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                  augment: bool | str, fill: Fill = 0.0, perm: torch.Tensor | None = None, start: int = 0,
                  shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled batches, drawn and augmented on the device; ``fill``: the padding
    value of the augmentation (``spec.black`` pads black, as the paper); ``augment``: a recipe of
    :mod:`~freezeout.data.recipes` (``True``: pad_crop_flip). ``perm`` (default: a new
    :func:`epoch_permutation`) and ``start`` (the first batch) resume an epoch where it stopped.

    ``shard=(rank, world_size)``: each global batch of ``batch_size`` images, and its augmentation,
    is drawn from ``generator`` exactly as in one process (every process holds the same generator);
    this process takes slice ``rank`` of ``world_size`` equal slices of it. The slices of a step are
    then exactly the single-process batch, and the generators of all processes stay equal."""
    # Once per epoch, not per step: a host-to-device copy inside the step would cost a sync.
    fill = torch.as_tensor(fill, dtype=x.dtype).to(x.device)
    recipe = augment_recipe(augment)
    rank, world = shard
    part = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    if perm is None:
        perm = epoch_permutation(len(x), generator, x.device)
    elif perm.device != x.device:  # a resumed epoch's, loaded on the host: copied once, not indexed from there a step
        perm = perm.to(x.device)
    for i in range(start, iterations_per_epoch(len(x), batch_size)):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        if recipe == "pad_crop_flip":
            draws = augment_draws(batch_size, generator, x.device)  # the whole global batch's
            yield shift_and_flip(x[idx[part]], *(d[part] for d in draws), pad=4, fill=fill), y[idx[part]]
        elif recipe == "random_resized_crop_flip":
            boxes = random_resized_boxes(batch_size, x.shape[2], x.shape[3], generator, x.device)
            flip = torch.rand(batch_size, device=x.device, generator=generator) < 0.5
            images = x[idx[part]]
            crops = resized_crops(images, boxes[part], flip[part])  # grid_sample answers NCHW: one copy back
            yield (crops.contiguous(memory_format=torch.channels_last) if is_channels_last(images) else crops), \
                y[idx[part]]
        else:
            yield x[idx[part]], y[idx[part]]
