"""Batches and augmentation as tensor ops on the device (as in airbench): no DataLoader workers."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

Fill = float | Sequence[float] | torch.Tensor


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, fill: Fill = 0.0) -> torch.Tensor:
    """Random crop after padding by ``pad`` pixels, and random horizontal flip, per image.

    ``fill`` is the padding value, per channel or for all: pass ``spec.black`` (the normalised
    value of a black pixel) to pad as the paper does, with torchvision's ``RandomCrop(32,
    padding=4)`` on the image before ``Normalize``; 0 pads with the mean colour instead.
    """
    n = len(x)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    return shift_and_flip(x, dy, dx, flip, pad, fill)


def shift_and_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int,
                   fill: Fill = 0.0) -> torch.Tensor:
    """Image ``i`` padded by ``pad`` with ``fill``, cropped back to its size at offset
    (``dy[i]``, ``dx[i]``) of the padded image, then mirrored if ``flip[i]``."""
    n, c, h, w = x.shape
    padded = x.new_empty((n, c, h + 2 * pad, w + 2 * pad))
    padded.copy_(torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1).expand_as(padded))
    padded[:, :, pad:pad + h, pad:pad + w] = x
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def iterations_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped, so every step sees ``batch_size``)."""
    return n // batch_size


def batch_stream(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, augment: bool,
                 fill: Fill = 0.0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches, epoch after epoch, from their own generator (equal seeds give
    equal batches): for measurements that must not touch a run's random streams."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    while True:
        yield from train_batches(x, y, batch_size, generator, augment, fill)


def epoch_permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The order of one epoch's ``n`` training images, drawn from the run's data generator."""
    return torch.randperm(n, device=device, generator=generator)


def train_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                  augment: bool, fill: Fill = 0.0, perm: torch.Tensor | None = None,
                  start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled batches, drawn and augmented on the device; ``fill``: the padding
    value of the augmentation (``spec.black`` pads black, as the paper). ``perm`` (default: a new
    :func:`epoch_permutation`) and ``start`` (the first batch) resume an epoch where it stopped."""
    # Once per epoch, not per step: a host-to-device copy inside the step would cost a sync.
    fill = torch.as_tensor(fill, dtype=x.dtype).to(x.device)
    if perm is None:
        perm = epoch_permutation(len(x), generator, x.device)
    for i in range(start, iterations_per_epoch(len(x), batch_size)):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        xb = x[idx]
        yield (augment_batch(xb, generator, fill=fill) if augment else xb), y[idx]
