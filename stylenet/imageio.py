"""Reading images of any mode into upright 8-bit RGB, with one error type for bad files.

Shared by training data, style images and inference, so every entry point accepts the same
files: greyscale, RGBA, palette, CMYK, 16-bit and EXIF-rotated images all come out as
upright RGB; truncated, empty and non-image files raise `UnreadableImageError`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from stylenet.errors import StylenetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class UnreadableImageError(StylenetError):
    """A file that cannot be decoded as an image."""


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # PIL's own conversion clips 16-bit and float values to 255; rescale by the range instead.
        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / peak * 255.0, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as image viewers show them, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def open_rgb(source: str | Path | bytes) -> Image.Image:
    """Decode `source` (a path or encoded bytes) fully into an upright RGB image."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()  # decode now: truncated files fail here, not later in a worker
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UnreadableImageError(f"{name}: not a readable image ({error})") from error


def list_images(root: str | Path) -> list[Path]:
    """Image files under `root`, recursively, in a stable order."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """An RGB image (PIL, or uint8 (H, W, 3)) as float (3, H, W) in [0, 1]."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def to_array(image: torch.Tensor) -> np.ndarray:
    """A float (3, H, W) image in [0, 1] as uint8 (H, W, 3), rounded."""
    return image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
