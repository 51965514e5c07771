"""Batches and augmentation as tensor ops on the device (as in airbench): no DataLoader workers."""
from __future__ import annotations

from typing import Iterator

import torch


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` pixels, and random horizontal flip, per image."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def iterations_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped, so every step sees ``batch_size``)."""
    return n // batch_size


def batch_stream(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int,
                 augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches, epoch after epoch, from their own generator (equal seeds give
    equal batches): for measurements that must not touch a run's random streams."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    while True:
        yield from train_batches(x, y, batch_size, generator, augment)


def train_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                  augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled batches, drawn and augmented on the device."""
    perm = torch.randperm(len(x), device=x.device, generator=generator)
    for i in range(iterations_per_epoch(len(x), batch_size)):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        xb = x[idx]
        yield (augment_batch(xb, generator) if augment else xb), y[idx]
