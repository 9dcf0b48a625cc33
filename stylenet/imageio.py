"""Reading images of any mode into upright 8-bit RGB, with one error type for bad files.

Shared by training data, style images and inference, so every entry point accepts the same
files: greyscale, RGBA, palette, CMYK, 16-bit and EXIF-rotated images all come out as
upright RGB; truncated, empty and non-image files, and decompression bombs (more pixels than
Pillow's `Image.MAX_IMAGE_PIXELS` allows twice over), raise `UnreadableImageError`.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
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


# Exif orientations 5 to 8 turn the picture a quarter, swapping width and height.
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


@contextlib.contextmanager
def _opened(source: str | Path | bytes) -> Iterator[Image.Image]:
    """`Image.open` with every way a file can fail as one `UnreadableImageError` naming it."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it; callers check sizes against memory themselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                yield image
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as error:
        raise UnreadableImageError(f"{name}: refused, too many pixels to decode safely ({error})") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UnreadableImageError(f"{name}: not a readable image ({error})") from error


def image_size(source: str | Path | bytes) -> tuple[int, int]:
    """(width, height) of the upright image, read from the header alone: nothing is decoded."""
    with _opened(source) as image:
        width, height = image.size
        if _exif_before_pixels(image) and image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
            width, height = height, width
        return width, height


def is_animated(source: str | Path | bytes) -> bool:
    """Whether `source` holds several frames (an animated GIF, PNG or WebP; a multi-page TIFF), of which
    `open_rgb` decodes the first; read from the file's start, without decoding the frames."""
    with _opened(source) as image:
        # Not MPO: cameras store a preview beside the photo, which Pillow counts as a second frame.
        return image.format in ("GIF", "PNG", "WEBP", "TIFF") and bool(getattr(image, "is_animated", False))


def open_rgb(source: str | Path | bytes, at_least: int | None = None) -> Image.Image:
    """Decode `source` (a path or encoded bytes) fully into an upright RGB image.

    `at_least`: the smallest side the caller will resize to. A JPEG is then decoded at a half, a quarter
    or an eighth of its size where both sides stay at least that (libjpeg scales while decoding), so a
    48-megapixel photo cropped at 256 px takes 2 MB to decode, not 144."""
    with _opened(source) as image:
        if at_least is not None and image.format == "JPEG":
            image.draft("RGB", (at_least, at_least))  # both sides, so an Exif quarter turn keeps the bound
        upright_by_exif = _exif_before_pixels(image)
        image.load()  # decode now: truncated files fail here, not later in a worker
        if upright_by_exif:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image)


def _exif_before_pixels(image: Image.Image) -> bool:
    """Whether the image's Exif, if any, comes before its pixels.

    A PNG may put its eXIf chunk after them, and Pillow decodes the whole picture to look for one:
    `image_size` would then use the memory it is there to plan. Such a late orientation is ignored,
    by `image_size` and `open_rgb` alike, so the size planned is the size decoded."""
    return image.format != "PNG" or "exif" in image.info


def list_images(root: str | Path) -> list[Path]:
    """Image files under `root`, recursively, in a stable order."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """An RGB image (PIL, or uint8 (H, W, 3)) as float (3, H, W) in [0, 1]."""
    array = np.array(image, dtype=np.float32)  # a copy of its own, so it can be scaled in place
    array /= 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def to_array(image: torch.Tensor) -> np.ndarray:
    """A float (3, H, W) image in [0, 1] as uint8 (H, W, 3), rounded."""
    # One float copy, scaled in place: a large image's every extra copy is 12 bytes a pixel.
    return image.clamp(0, 1).mul_(255).round_().byte().permute(1, 2, 0).cpu().numpy()
