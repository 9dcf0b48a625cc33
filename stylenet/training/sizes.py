"""Sizes a training run asks for, checked against the memory free before anything loads.

`style.size` and `sample_size` take any whole number; a slip of a digit (30000 for 3000) used to
end the run in the out-of-memory killer, or in a page of traceback, after the photos had been
decoded. Each is refused in one line where what it needs is over the free memory of the machine.
The figures are lower bounds (the passes need more besides), so only sizes that cannot fit are refused.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from stylenet.errors import ConfigError
from stylenet.imageio import UnreadableImageError, image_size
from stylenet.inference.memory import activation_bytes_per_pixel, available_memory, format_size
from stylenet.style_list import selected_styles
from stylenet.styles import find_style_image
from stylenet.validation import NETWORK_KEYS

# Peak bytes per pixel of the painting in the loss network's pass that takes its Gram matrices (VGG19
# to relu5_1, fp32, no gradients): measured at 770-780 at 1024 and 2048 px on a CPU.
STYLE_PASS_BYTES_PER_PIXEL = 768
# The validation photos as one float32 batch (3 channels of 4 bytes) before they are stylised.
SAMPLE_BYTES_PER_PIXEL = 12


def check_sizes_fit(cfg: DictConfig, free: int | None = None) -> None:
    """One ConfigError line for a painting size or sample size that cannot fit in `free` bytes
    (default: the memory the machine has free now)."""
    free = available_memory("cpu") if free is None else free
    if free is None:  # nothing to compare with (no /proc/meminfo): the sizes' own checks stand
        return
    for style in selected_styles(cfg):
        _check_painting(style, free)
    side = int(cfg.sample_size)
    photos = int(cfg.data.get("val_size", 1) or 1)
    shape = {key: cfg.model[key] for key in NETWORK_KEYS if key in cfg.model}
    network = activation_bytes_per_pixel(shape, "fp32", fast=False)
    need = photos * side * side * (SAMPLE_BYTES_PER_PIXEL + network)
    if need > free:
        raise ConfigError(
            f"sample_size={side}: stylising {photos} validation photo(s) at {side}x{side} px needs at least "
            f"{format_size(need)}, over the {format_size(free)} free; use a smaller sample_size (256 is the usual)"
        )


def _check_painting(style: dict[str, Any], free: int) -> None:
    try:
        width, height = image_size(find_style_image(str(style["image"])))
    except UnreadableImageError:  # said in its own line when the painting loads
        return
    scale = int(style["size"]) / max(width, height)
    pixels = max(1, round(width * scale)) * max(1, round(height * scale))
    need = pixels * STYLE_PASS_BYTES_PER_PIXEL
    if need > free:
        raise ConfigError(
            f"style.size={style['size']} ({style['name']}): the painting at that size needs at least "
            f"{format_size(need)} for its Gram matrices, over the {format_size(free)} free; "
            "use a smaller style.size (512 is the usual)"
        )
