"""PIL images to uint8 arrays: channel conversion and resizing, shared by the image-folder and
torchvision sources."""
from __future__ import annotations

from pathlib import Path

import numpy as np
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


def open_image(path: Path) -> Image.Image:
    """The decoded image at ``path``; an unreadable or corrupt file is a ConfigError naming it."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so that a truncated file fails here, with its name
            return img
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError... for bad files
        raise ConfigError(f"cannot read the image {path} ({type(e).__name__}: {e}); remove or replace it") from None


def check_same_size(first: tuple[str, tuple[int, int]], name: str, size: tuple[int, int]) -> None:
    """Without data.image_size every image must have the first image's size."""
    if size != first[1]:
        raise ConfigError(
            f"images differ in size and data.image_size is not set: {first[0]} is {first[1][0]}x{first[1][1]} "
            f"and {name} is {size[0]}x{size[1]} (HxW); set data.image_size=N or [H, W] to resize them all")
