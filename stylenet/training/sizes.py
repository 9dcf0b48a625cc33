"""Sizes a training run asks for, checked against the painting and the memory free before anything loads.

`style.size` and `sample_size` take any whole number; a slip of a digit (30000 for 3000) used to
end the run in the out-of-memory killer, or in a page of traceback, after the photos had been
decoded. Each is refused in one line where what it needs is over the free memory of the machine.
The figures are lower bounds (the passes need more besides), so only sizes that cannot fit are refused.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from stylenet.errors import ConfigError
from stylenet.imageio import UnreadableImageError, image_size
from stylenet.inference.memory import activation_bytes_per_pixel, available_memory, format_size
from stylenet.losses.vgg import PASS_BYTES_PER_PIXEL
from stylenet.style_list import selected_styles
from stylenet.styles import find_style_image
from stylenet.validation import NETWORK_KEYS

# VGG19 halves the painting four times before relu5_1: under 16 px a side, a layer is left with no pixels.
MIN_PAINTING_SIDE = 16
# The validation photos as one float32 batch (3 channels of 4 bytes) before they are stylised.
SAMPLE_BYTES_PER_PIXEL = 12


def check_sizes_fit(cfg: DictConfig, free: int | None = None) -> None:
    """One ConfigError line for a painting size too small for the loss network, or a painting or sample
    size that cannot fit in `free` bytes (default: the memory the machine has free now)."""
    free = available_memory("cpu") if free is None else free
    for style in selected_styles(cfg):
        _check_painting(style, free)
    if free is None:  # nothing to compare with (no /proc/meminfo)
        return
    # One photo of the validation batch, as a lower bound: the batch holds up to data.val_size. Its
    # stylisation runs on the training device, which is this machine's memory only on a CPU.
    side = int(cfg.sample_size)
    per_pixel = SAMPLE_BYTES_PER_PIXEL
    if _trains_on_cpu(cfg):
        shape = {key: cfg.model[key] for key in NETWORK_KEYS if key in cfg.model}
        per_pixel += activation_bytes_per_pixel(shape, "fp32", fast=False)
    need = side * side * per_pixel
    if need > free:
        raise ConfigError(
            f"sample_size={side}: stylising a validation photo at {side}x{side} px needs at least "
            f"{format_size(need)}, over the {format_size(free)} free; use a smaller sample_size (256 is the usual)"
        )


def _trains_on_cpu(cfg: DictConfig) -> bool:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def _check_painting(style: dict[str, Any], free: int | None) -> None:
    try:
        width, height = image_size(find_style_image(str(style["image"])))
    except UnreadableImageError:  # said in its own line when the painting loads
        return
    scale = int(style["size"]) / max(width, height)
    sides = max(1, round(width * scale)), max(1, round(height * scale))
    if min(sides) < MIN_PAINTING_SIDE:
        raise ConfigError(
            f"style.size={style['size']} ({style['name']}): the painting would be {sides[0]}x{sides[1]} px, and "
            f"the loss network's four halvings need {MIN_PAINTING_SIDE} px on its shorter side; use a larger style.size"
        )
    need = sides[0] * sides[1] * PASS_BYTES_PER_PIXEL
    if free is not None and need > free:
        raise ConfigError(
            f"style.size={style['size']} ({style['name']}): the painting at that size needs at least "
            f"{format_size(need)} for its Gram matrices, over the {format_size(free)} free; "
            "use a smaller style.size (512 is the usual)"
        )
