"""How much memory stylizing an image takes, how much it may take, and tiling when it would not fit.

The estimates are counted from the network's layer widths and the buffers the pipeline holds,
not measured once on one machine, so they follow any model width, precision and image size;
`tests/test_memory.py` checks them against peaks measured in a fresh process.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from pathlib import Path
from typing import Any

import torch

from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.global_norm import REFERENCE_SIDE
from stylenet.networks.transformer import TransformerNet

# The dtype of each precision's activations (int8: bf16 activations around int8 convolutions).
ACTIVATION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.bfloat16}

# What a run may take by default: half the memory the kernel says is available leaves the
# machine usable; on a GPU most of its free memory (nothing else is meant to run there).
RAM_FRACTION = 0.5
GPU_FRACTION = 0.8
FALLBACK_LIMIT = 4 << 30  # where free memory cannot be read (not Linux, no psutil)
# Allocator rounding and backend workspaces on top of the counted tensors. tests/test_memory.py
# checks that estimates bound peaks measured in a fresh process, by at most 2.5 times.
MARGIN = 1.25
# Smaller automatic tiles would be mostly overlap; where even these do not fit, the image is refused.
MIN_AUTO_TILE = 128
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class MemoryLimitError(StylenetError):
    """An image that cannot be stylized within the memory limit, even in tiles."""


# How the lines below name the limit and the way under it: the CLI's options. A front end with controls
# of its own (the app's page) puts its words in their place.
LIMIT_NAME = "(--max-memory)"
SHRINK_HINT = "shrink it with --size or --scale"


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5GB', '2GiB' -> bytes (binary units). A bare number is refused: 8 bytes is never meant."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt])(i?b)?\s*", str(text), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a memory size; write it with a unit, like 8G or 512M")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def memory_budget(value: int | str | None) -> int | None:
    """A `max_memory` setting as bytes: a positive whole number, a size with a unit ("8G") or None (a share of
    what is free); anything else is one `ConfigError`, raised where it is set, not at the next image."""
    if isinstance(value, str):
        try:
            value = parse_size(value)
        except ValueError as error:
            raise ConfigError(f"max_memory: {error}") from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy's integers too
        raise ConfigError(f'max_memory takes bytes or a size such as "8G", not {value!r}')
    if value <= 0:
        raise ConfigError(f"max_memory must be positive, not {value}")
    return int(value)


def format_size(size: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / (1 << 10):.0f} KB"


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can be allocated without swapping on `device`: MemAvailable, or the GPU's free memory."""
    device = torch.device(device)
    if device.type == "cuda":
        # Blocks torch's caching allocator holds but no tensor uses are free to this process, though
        # not to the driver: without them a second large image would look as if it did not fit.
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + cached
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def memory_limit(max_memory: int | None, device: torch.device | str = "cpu") -> int:
    """`max_memory` where given, else a share of what `device` has free now."""
    if max_memory is not None:
        return max_memory
    device = torch.device(device)
    free = available_memory(device)
    if free is None:
        return FALLBACK_LIMIT
    return int(free * (GPU_FRACTION if device.type == "cuda" else RAM_FRACTION))


def _widths(model: dict[str, Any]) -> tuple[int, int]:
    """Channels of the network's full- and half-resolution layers, read off a network built on no memory."""
    with torch.device("meta"):
        network = TransformerNet(**model)
    full, half, _ = network.channels
    return full, half


def activation_bytes_per_pixel(model: dict[str, Any], precision: str, fast: bool, compiled: bool = False) -> float:
    """Peak bytes per input pixel of one forward pass, at the network's widest full-resolution step.

    The lower layers run at a quarter and a sixteenth of the pixels, so the full-resolution steps
    set the peak. Eager (fp32, exported graphs): the nearest-upsampled half-resolution features
    (c2 channels), their reflection-padded copy and the convolution backend's reordered copy of
    it, with the c1-channel output written once in the backend's layout and once in PyTorch's:
    3 c2 + 2 c1. The fast path (`FastRunner`), eager, runs `stylenet.networks.low_memory_ops`:
    a c1 output beside its input (c2 at a quarter of the pixels), and for images too small for
    the border form a padded c1 copy beside a c1 activation: 2 c1 + c2 / 4, in its own dtype.
    From the second frame of a size on it keeps a c1 and a c2 / 4 buffer through the whole frame
    (`stylenet.networks.frame_buffers`), beside the residual blocks' three c3 / 16: less than that.
    Compiled, the upsampling's c1 output and its normalised copy, with the backend's blocked copies
    of the upsampling's input and of one c1 output, and on GPUs the c1 phases the output is
    interleaved from (CPUs upsample by a transposed convolution, which has none): 4 c1 + c2 at most.
    Bilinear upsampling has no sub-pixel form: on the fast path its upsampled c2 features and their
    padded copy stand beside the c1 output and the c2 input: 2 c2 + c1 + c2 / 4.
    On top: the input cast to that dtype, the network's output, its float32 copy and the clamped
    result.
    """
    c1, c2 = _widths(model)
    element = torch.finfo(ACTIVATION_DTYPES.get(precision, torch.float32)).bits // 8
    element = element if fast else 4
    if fast:
        features = 4 * c1 + c2 if compiled else 2 * c1 + c2 / 4
        if model.get("upsample") == "bilinear":
            features = max(features, 2 * c2 + c1 + c2 / 4)
    else:
        features = 3 * c2 + 2 * c1
    io = 3 * element + 3 * element + 2 * 3 * 4
    return MARGIN * (features * element + io)


def image_bytes(source_pixels: int, pixels: int, preserve_color: bool = False, blend: bool = False) -> float:
    """Peak bytes that one image's pixels take in the pipeline around the network (host memory).

    The largest of its stages: decoding (Pillow's 4-byte raster and a converted copy, the 3-byte
    array numpy reads and the float32 tensor, per source pixel); resizing (source and working
    float32 copies); and stylizing and saving (per working pixel: the float32 input and output,
    colour preservation's YIQ copies (4 x 12 B) or the strength blend's (12 B), then the float,
    numpy and Pillow copies written out: 12 + 3 + 4 B). Tiling's sums are counted with the
    network (`tiled_bytes`), on the device they live on.
    """
    post = 4 * 12 if preserve_color else 12 if blend else 0
    stages = (
        source_pixels * (4 + 4 + 3 + 12),
        (source_pixels + pixels) * 12 if pixels != source_pixels else 0,
        pixels * (12 + 12 + max(post, 12 + 3 + 4)),
    )
    return MARGIN * max(stages)


def reference_pixels(height: int, width: int) -> int:
    """Pixels of the downscaled copy that tiled inference measures its statistics on."""
    scale = min(1.0, REFERENCE_SIDE / max(height, width))
    return max(8, round(height * scale)) * max(8, round(width * scale))


def tiled_bytes(per_pixel: float, batch: int, height: int, width: int, tile: int, reference: bool) -> float:
    """Device bytes of a tiled pass: one tile's activations (or the statistics pass, whichever is
    larger) and the whole image's weighted sums (12 + 4 B per pixel)."""
    pixels = min(tile, height) * min(tile, width)
    if reference:
        pixels = max(pixels, reference_pixels(height, width))
    return batch * (per_pixel * pixels + 16 * height * width)


def choose_tile(
    per_pixel: float,
    shape: tuple[int, ...],
    limit: float,
    tile: int | str | None = "auto",
    reference: bool = True,
    name: str = "the image",
    reserved: float = 0,
) -> int | None:
    """The tile size for a pass over images of `shape` (N, 3, H, W) within `limit` bytes; None: whole.

    `tile` given as a number is kept (the caller asked for it); None always runs whole; "auto"
    runs whole where that fits, else picks the largest tile that does (saying so in one line on
    stderr) and raises `MemoryLimitError` where not even a `MIN_AUTO_TILE` tile fits. `reserved`:
    bytes already spoken for outside `limit` (the decoded image), added back in what the lines say,
    so that they speak of the whole --max-memory.
    """
    batch, height, width = shape[0], shape[-2], shape[-1]
    if tile is None or isinstance(tile, int):
        return tile
    if tile != "auto":
        raise ValueError(f'tile must be "auto", None or a size in px, not {tile!r}')
    whole = batch * per_pixel * height * width
    if whole <= limit:
        return None
    # Per image: what is left beside the weighted sums must hold one tile's (or the statistics pass's) activations.
    room = (limit / batch - 16 * height * width) / per_pixel
    if reference:
        room = room if room >= reference_pixels(height, width) else 0
    best = math.isqrt(max(0, int(room)))
    if best >= min(height, width):  # a thin image: tiles span its short side, only the long one is cut
        best = int(room) // min(height, width)
    if best < MIN_AUTO_TILE:
        least = tiled_bytes(per_pixel, batch, height, width, MIN_AUTO_TILE, reference)
        raise MemoryLimitError(
            f"{name} ({width}x{height} px) needs about {format_size(least + reserved)} even in tiles, over the "
            f"{format_size(limit + reserved)} allowed {LIMIT_NAME}; {SHRINK_HINT}"
        )
    print(
        f"note: {name} ({width}x{height} px) needs about {format_size(whole + reserved)} untiled, over the "
        f"{format_size(limit + reserved)} allowed (--max-memory): stylizing it in {best} px tiles",
        file=sys.stderr,
    )
    return best
