"""Decoding images: PIL images to uint8 arrays (channel conversion and resizing) for data kept in
memory, and encoded bytes to uint8 tensors with torchvision's decoders for streamed data; a file
that cannot be decoded is a :class:`BadImage` naming it."""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError

#: Files taken as images (torchvision's ImageFolder uses the same extensions).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
#: PIL modes with one band of intensity: these become 1 channel, everything else RGB.
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}


def channels_of(img: Image.Image) -> int:
    """1 for a grey image, 3 for anything else (RGB, RGBA, palette, CMYK...)."""
    return 1 if img.mode in GREY_MODES else 3


def to_array(img: Image.Image, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """``img`` as uint8 (H, W, C): converted to grey ("L", ITU-R 601-2 luma) or RGB, and resized
    to ``size`` = (H, W) with PIL's bilinear filter (antialiased when shrinking) if it differs."""
    img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and img.size != (size[1], size[0]):  # PIL sizes are (W, H)
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


class BadImage(Exception):
    """An image file that cannot be decoded: ``name`` (its path, or shard and key) and why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"cannot read the image {name} ({reason})")
        self.name, self.reason = name, reason


def bad_input_error(bad: BadImage, read: int) -> ConfigError:
    """The one line that stops a run at a bad image: which file, how many were read before it."""
    return ConfigError(f"{bad}; {read} images were read before it: remove or replace it, or set "
                       "data.skip_bad_images=true to skip unreadable images (they are counted)")


def open_image(path: Path) -> Image.Image:
    """The decoded image at ``path``; an unreadable or corrupt file is a :class:`BadImage`."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so that a truncated file fails here, with its name
            return img
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError... for bad files
        raise BadImage(str(path), f"{type(e).__name__}: {' '.join(str(e).split())}") from None


def decode_bytes(data: bytes, name: str, channels: int) -> torch.Tensor:
    """Encoded image bytes as uint8 (C, H, W) with ``channels`` 1 or 3: torchvision's decoders
    (JPEG, PNG, GIF, WebP), PIL for the other formats; undecodable bytes are a :class:`BadImage`."""
    from torchvision.io import ImageReadMode, decode_image

    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"  # its decoder warns at GRAY, per image: convert after
    mode = ImageReadMode.GRAY if channels == 1 and not webp else ImageReadMode.RGB
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    try:
        with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; its decoders still serve
            warnings.simplefilter("ignore", DeprecationWarning)
            return _with_channels(decode_image(buf, mode=mode), channels)
    except RuntimeError as first:
        if _is_torchvision_format(data):  # a JPEG/PNG/GIF/WebP that torchvision cannot decode: bad
            # its messages start with the C++ source's place: keep what comes after
            raise BadImage(name, re.split(r"\.cpp:\d+, ", " ".join(str(first).split()))[-1][:200]) from None
    try:  # BMP, TIFF, PPM...: PIL
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr = to_array(img, channels, None)
    except Exception as e:
        raise BadImage(name, f"{type(e).__name__}: {' '.join(str(e).split())}"[:200]) from None
    return torch.tensor(arr).permute(2, 0, 1).contiguous()


def stored_channels(data: bytes, name: str) -> tuple[int, tuple[int, int]]:
    """The channels (1: grey, 3: anything else) and (H, W) of encoded image bytes, as stored."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
        return (1 if img.shape[0] in (1, 2) else 3), (img.shape[1], img.shape[2])
    except RuntimeError:
        img = decode_bytes(data, name, 3)  # PIL's formats (or a BadImage)
        return 3, (img.shape[1], img.shape[2])


def _with_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    """GIF and WebP decoders ignore the mode asked for: grey (ITU-R 601-2 luma, as PIL) or RGB."""
    if img.shape[0] == 4:
        img = img[:3]
    if img.shape[0] == channels:
        return img
    if channels == 3:
        return img.expand(3, -1, -1).contiguous()
    from torchvision.transforms.v2 import functional as TF

    return TF.rgb_to_grayscale(img)


def _is_torchvision_format(data: bytes) -> bool:
    return (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n" or data[:4] == b"GIF8"
            or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"))


def check_same_size(first: tuple[str, tuple[int, int]], name: str, size: tuple[int, int]) -> None:
    """Without data.image_size every image must have the first image's size."""
    if size != first[1]:
        raise ConfigError(
            f"images differ in size and data.image_size is not set: {first[0]} is {first[1][0]}x{first[1][1]} "
            f"and {name} is {size[0]}x{size[1]} (HxW); set data.image_size=N or [H, W] to resize them all")
