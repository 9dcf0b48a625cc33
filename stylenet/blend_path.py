"""Are blends smooth? The style loss against each end of a path between two styles of a model.

For w = 0, 1/(n-1), ..., 1 the model stylises every photo with the blend (1 - w) * A + w * B, and
the style term of its training loss is measured against A's painting and against B's (each
with its own size and weights). A smooth path moves away from A and towards B all the way:
the loss against A rises with w and the loss against B falls (Dumoulin et al. 2017, Fig. 7).

    python -m stylenet.blend_path MODEL --photos DIR --pair starry,wave
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import center_crop, pil_to_tensor, resize

from stylenet.checkpoint import styles_of
from stylenet.config_files import default_loss
from stylenet.errors import ConfigError, StylenetError
from stylenet.imageio import list_images, open_rgb
from stylenet.inference.model import Stylizer, load_model
from stylenet.losses.perceptual import PerceptualLoss, build_perceptual_loss
from stylenet.style_list import WEIGHT_KEYS
from stylenet.styles import load_style_image


def style_loss(stylizer: Stylizer, name: str, vgg_weights: str | None = None) -> PerceptualLoss:
    """The training loss of style `name` of the stylizer's model: its painting, size and weights."""
    metadata = stylizer.metadata
    style = next((s for s in styles_of(metadata) if s.get("name") == name), None)
    if style is None:
        raise ConfigError(f"unknown style {name!r}: the model holds {', '.join(stylizer.styles)}")
    known = set(inspect.signature(build_perceptual_loss).parameters) - {"style_image"}
    config = {k: v for k, v in (metadata.get("loss") or default_loss()).items() if k in known}
    config |= {k: style[k] for k in WEIGHT_KEYS if k in style}  # a style of several keeps its own weights
    if vgg_weights is not None:
        config["vgg_weights"] = vgg_weights
    return build_perceptual_loss(load_style_image(str(style["image"]), int(style["size"])), **config)


def load_photos(folder: Path, size: int) -> torch.Tensor:
    """(N, 3, size, size): every photo under `folder`, shorter side resized to `size` and centre-cropped."""
    photos = []
    for path in list_images(folder):
        picture = resize(open_rgb(path), size, interpolation=Image.Resampling.BICUBIC, antialias=True)
        photos.append(pil_to_tensor(center_crop(picture, [size, size])).float().div(255))
    if not photos:
        raise ConfigError(f"--photos {folder}: no images there")
    return torch.stack(photos)


def blend_path(
    stylizer: Stylizer, photos: torch.Tensor, a: str, b: str, points: int = 5, vgg_weights: str | None = None
) -> list[dict[str, float]]:
    """One row per w in [0, 1] (`points` of them): w and the mean style loss against `a` and against `b`."""
    losses = {name: style_loss(stylizer, name, vgg_weights) for name in (a, b)}
    rows = []
    for i in range(points):
        w = i / (points - 1)
        blended = stylizer.with_style({a: 1.0 - w, b: w})
        with torch.no_grad():
            outputs = torch.cat([blended(photo.unsqueeze(0), tile=None) for photo in photos])
            row = {"w": w}
            for name, loss in losses.items():
                row[f"style_loss_{name}"] = float(loss(outputs, photos).style)
        rows.append(row)
    return rows


def is_monotone(values: list[float], rising: bool) -> bool:
    pairs = list(zip(values, values[1:], strict=False))
    return (
        all(later >= earlier for earlier, later in pairs)
        if rising
        else all(later <= earlier for earlier, later in pairs)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylenet.blend_path", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos the model never trained on")
    parser.add_argument("--pair", required=True, help="two styles of the model, e.g. starry,wave")
    parser.add_argument("--points", type=int, default=5, help="blends from A to B, ends included")
    parser.add_argument("--size", type=int, default=256, help="photos are centre-cropped to N x N")
    args = parser.parse_args(argv)
    try:
        a, b = (name.strip() for name in args.pair.split(","))
        stylizer = load_model(args.model, precision="fp32")
        rows = blend_path(stylizer, load_photos(args.photos, args.size), a, b, args.points)
    except (StylenetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"| w ({a} -> {b}) | style loss vs {a} | style loss vs {b} |\n|---|---|---|")
    for row in rows:
        print(f"| {row['w']:.2f} | {row[f'style_loss_{a}']:.4f} | {row[f'style_loss_{b}']:.4f} |")
    away = is_monotone([r[f"style_loss_{a}"] for r in rows], rising=True)
    towards = is_monotone([r[f"style_loss_{b}"] for r in rows], rising=False)
    print(f"\nmonotone: against {a} rising {away}, against {b} falling {towards}")
    return 0 if away and towards else 1


if __name__ == "__main__":
    sys.exit(main())
