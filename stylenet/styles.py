"""Finding and loading style images named in `configs/style/*.yaml`."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from stylenet.errors import ConfigError
from stylenet.imageio import UnreadableImageError, open_rgb

STYLE_DIR_ENV = "STYLENET_STYLE_DIR"
PACKAGED_STYLES = Path(__file__).parent / "assets"


TRAINING_REMEDY = "or pass style.image=/path/to/painting.jpg"


def find_style_image(image: str, remedy: str = TRAINING_REMEDY, path_remedy: str = "") -> Path:
    """An existing path as given, else `image` in $STYLENET_STYLE_DIR, else in the package.

    `remedy`: the end of the not-found line for a name, in the terms of the command that asked (a
    training override for train.py, an option for the CLI); `path_remedy`: the same for a path
    (`style.image=PATH` is what a training run with a path was given already)."""
    given = Path(image).expanduser()
    if given.is_file():
        return given
    if given.is_absolute() or image.startswith(("./", "../", "~")):  # a path, not a name to look up in the folders
        what = "a folder, not an image" if given.is_dir() else "no such file"
        raise ConfigError(f"style image {image}: {what}" + (f"; {path_remedy}" if path_remedy else ""))
    places = [Path(d) for d in os.environ.get(STYLE_DIR_ENV, "").split(os.pathsep) if d] + [PACKAGED_STYLES]
    for place in places:
        if (place / image).is_file():
            return place / image
    searched = ", ".join(str(p) for p in places)
    raise ConfigError(
        f"style image {image!r} not found (looked in {searched}); put it in a folder named by {STYLE_DIR_ENV}"
        + (f", {remedy}" if remedy else "")
    )


def load_style_image(image: str, size: int | None) -> torch.Tensor:
    """The style image as (1, 3, H, W) in [0, 1], its longest side resized to `size`."""
    path = find_style_image(image)
    try:
        picture = open_rgb(path)
    except UnreadableImageError as error:
        raise ConfigError(f"style image {path} cannot be read: {error}") from error
    if size:
        scale = size / max(picture.size)
        new_size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(new_size, Image.Resampling.BICUBIC)
    return pil_to_tensor(picture).float().div(255).unsqueeze(0)
