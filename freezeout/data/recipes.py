"""Augmentation recipes (``data.augment``), each in two forms that draw the same distribution:
per batch on the device for data kept in memory, per image with ``torchvision.transforms.v2`` on
the loader's workers for streamed data.

- ``pad_crop_flip``: pad 4 pixels (black), crop back at a random offset, flip half the images
  (the paper's CIFAR augmentation; ``data.augment=true`` means it, as before);
- ``random_resized_crop_flip``: a random crop of 8-100% of the area and aspect 3/4-4/3, resized
  to ``image_size``, flipped half the time (ImageNet-style);
- ``none`` (``data.augment=false``).

Evaluation resizes to ``image_size``; after ``random_resized_crop_flip`` it resizes the shorter
side to ``image_size / 0.875`` and takes the centre crop, as ImageNet evaluation does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError

RECIPES = ("pad_crop_flip", "random_resized_crop_flip", "none")
PAD = 4  # pixels, pad_crop_flip
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # random_resized_crop_flip: area fraction, aspect (W / H)
CROP_FRACTION = 0.875  # evaluation after random_resized_crop_flip: centre crop of the resized image


def augment_recipe(value) -> str:
    """The recipe ``data.augment`` names: a name, or ``true``/``false`` as before."""
    if isinstance(value, bool) or value is None:
        return "pad_crop_flip" if value else "none"
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return "pad_crop_flip" if text == "true" else "none"
    if text not in RECIPES:
        raise ConfigError(f"data.augment={value!r} is unknown; allowed: {', '.join(RECIPES)} (or true = "
                          "pad_crop_flip, false = none)")
    return text


def random_resized_boxes(n: int, h: int, w: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` crop boxes (top, left, height, width) in pixels, drawn as torchvision's
    RandomResizedCrop draws one (area and log-aspect uniform), for all images at once; a box
    that does not fit is shrunk to fit instead of redrawn."""
    area = torch.empty(n, device=device).uniform_(*SCALE, generator=generator) * h * w
    log_ratio = torch.empty(n, device=device).uniform_(math.log(RATIO[0]), math.log(RATIO[1]), generator=generator)
    ratio = torch.exp(log_ratio)
    bw = torch.sqrt(area * ratio).round().clamp(1, w)
    bh = torch.sqrt(area / ratio).round().clamp(1, h)
    top = torch.floor(torch.rand(n, device=device, generator=generator) * (h - bh + 1))
    left = torch.floor(torch.rand(n, device=device, generator=generator) * (w - bw + 1))
    return torch.stack([top, left, bh, bw], 1)


def resized_crops(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Each image's box resized (bilinear) to the image's own size, mirrored where ``flip``: one
    ``grid_sample`` for the whole float batch."""
    n, _, h, w = x.shape
    top, left, bh, bw = boxes.unbind(1)
    sx, sy = bw / w, bh / h  # the box's size in the image's normalised [-1, 1] coordinates
    cx = (left + bw / 2) / w * 2 - 1
    cy = (top + bh / 2) / h * 2 - 1
    sx = torch.where(flip, -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def stream_transforms(recipe: str, size: tuple[int, int], train: bool):
    """The per-image ``transforms.v2`` pipeline of a streamed split, on uint8 CHW tensors (any
    input size): the training recipe, or the evaluation resize (and centre crop)."""
    from torchvision.transforms import v2

    if train and recipe == "random_resized_crop_flip":
        return v2.Compose([v2.RandomResizedCrop(size, SCALE, RATIO, antialias=True), v2.RandomHorizontalFlip()])
    if not train and recipe == "random_resized_crop_flip":
        return v2.Compose([v2.Resize(round(min(size) / CROP_FRACTION), antialias=True), v2.CenterCrop(size)])
    steps = [v2.Resize(size, antialias=True)]
    if train and recipe == "pad_crop_flip":
        steps += [v2.RandomCrop(size, padding=PAD, fill=0), v2.RandomHorizontalFlip()]
    return v2.Compose(steps)
