"""Are blends smooth? The style loss against each end of a path between two styles of a model.

For w = 0, 1/(n-1), ..., 1 the model stylises every photo with the blend (1 - w) * A + w * B, and
the style term of its training loss is measured against A's painting and against B's (each
with its own size and weights). A smooth path moves away from A and towards B all the way:
the loss against A rises with w and the loss against B falls (Dumoulin et al. 2017, Fig. 7).

    python -m stylenet.blend_path MODEL --photos DIR --pair starry,wave
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from stylenet import evaluate_loss, evaluate_scoring
from stylenet.checkpoint import styles_of
from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.model import Stylizer, load_model
from stylenet.losses.perceptual import PerceptualLoss


def style_loss(stylizer: Stylizer, name: str, vgg_weights: str | None = None) -> PerceptualLoss:
    """The training loss of style `name` of the stylizer's model: its painting, size and weights."""
    entry = next((s for s in styles_of(stylizer.metadata) if s.get("name") == name), None)
    if entry is None:
        raise ConfigError(f"unknown style {name!r}: the model holds {', '.join(stylizer.styles)}")
    return evaluate_loss.style_loss(entry, evaluate_loss.loss_definition(stylizer.metadata, vgg_weights)[0])[0]


def blend_path(
    stylizer: Stylizer,
    photos: torch.Tensor,
    a: str,
    b: str,
    points: int = 5,
    vgg_weights: str | None = None,
    stylized: list[torch.Tensor] | None = None,
) -> list[dict[str, float]]:
    """One row per w in [0, 1] (`points` of them): w and the mean style loss against `a` and against `b`.
    Each point's outputs (N, 3, H, W) are appended to `stylized` when it is given."""
    losses = {name: style_loss(stylizer, name, vgg_weights) for name in (a, b)}
    rows = []
    for i in range(points):
        w = i / (points - 1)
        blended = stylizer.with_style({a: 1.0 - w, b: w})
        with torch.no_grad():
            outputs = torch.cat([blended(photo.unsqueeze(0), tile=None) for photo in photos])
            if stylized is not None:
                stylized.append(outputs)
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
    parser.add_argument("--grid", type=Path, help="also save the stylised photos: a row per photo, a column per w")
    args = parser.parse_args(argv)
    try:
        a, b = (name.strip() for name in args.pair.split(","))
        stylizer = load_model(args.model, precision="fp32")
        photos = torch.cat(
            [photo for _, photo in evaluate_scoring.load_photos(args.photos, args.size, torch.device("cpu"))[0]]
        )
        stylized: list[torch.Tensor] = []
        rows = blend_path(stylizer, photos, a, b, args.points, stylized=stylized)
    except (StylenetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.grid:
        columns = torch.stack([photos, *stylized], dim=1)  # (N, 1 + points, 3, H, W)
        save_image(columns.flatten(0, 1), args.grid, nrow=1 + args.points, padding=2)
    print(f"| w ({a} -> {b}) | style loss vs {a} | style loss vs {b} |\n|---|---|---|")
    for row in rows:
        print(f"| {row['w']:.2f} | {row[f'style_loss_{a}']:.4f} | {row[f'style_loss_{b}']:.4f} |")
    away = is_monotone([r[f"style_loss_{a}"] for r in rows], rising=True)
    towards = is_monotone([r[f"style_loss_{b}"] for r in rows], rising=False)
    print(f"\nmonotone: against {a} rising {away}, against {b} falling {towards}")
    return 0 if away and towards else 1


if __name__ == "__main__":
    sys.exit(main())
