"""Each painting's Gram trace, beside how much a network trained on it flickers.

    python scripts/gram_trace.py [STYLE ...] [--video-report video_report.json] [--which baseline]

STYLE names a style config (configs/style/STYLE.yaml; default: every one but `custom`); the
paintings come from STYLENET_STYLE_DIR or the package, as in training. Gupta et al. 2017
("Characterizing and Improving Stability in Neural Style Transfer") find a network's instability
rising with the trace of its painting's Gram matrices: a texture of more feature energy has more
ways to match the same statistics, so small changes of the photo move it further. Per style,
the largest first: the trace of each style layer's target (the Gram matrix the loss compares
with, at the config's size) and their sum. With `--video-report` (a `stylenet evaluate --video`
report of a model holding those styles), also each style's mean warping error per clip, for
`--which` model ("model" or "baseline"), and the rank correlation of each clip's errors with the
traces. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf

from stylenet.errors import StylenetError
from stylenet.losses.gram import gram_matrix
from stylenet.losses.vgg import VGG19Features
from stylenet.styles import load_style_image

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def traces(style: str, layers: list[str], vgg: VGG19Features) -> list[float]:
    """The trace of `style`'s target Gram matrix at each of `layers`."""
    config = OmegaConf.load(CONFIGS / "style" / f"{style}.yaml")
    with torch.no_grad():
        features = vgg(load_style_image(config.image, config.size), layers)
    return [float(torch.diagonal(gram_matrix(features[layer])[0]).sum()) for layer in layers]


def ranks(values: list[float]) -> list[float]:
    """Each value's place from the smallest (0) up."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    for rank, index in enumerate(order):
        out[index] = float(rank)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of `a` and `b`, 3 values or more (no ties expected among measured floats)."""
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("styles", nargs="*")
    parser.add_argument("--video-report", type=Path)
    parser.add_argument("--which", default="model", choices=["model", "baseline"])
    args = parser.parse_args()
    configured = sorted(p.stem for p in (CONFIGS / "style").glob("*.yaml") if p.stem != "custom")
    unknown = [style for style in args.styles if style not in configured]
    if unknown:
        parser.error(f"no style config named {', '.join(unknown)}; configured: {', '.join(configured)}")
    styles = args.styles or configured
    # Checked before the network runs: every style must be in the report, for the model asked for.
    clips = json.loads(args.video_report.read_text())["clips"] if args.video_report else []
    for clip in clips:
        missing = [style for style in styles if f"{args.which}/{style}" not in clip["warping_error"]]
        if missing:
            parser.error(f"{args.video_report} has no {args.which} errors for {', '.join(missing)} on {clip['clip']}")
    layers = list(OmegaConf.load(CONFIGS / "loss" / "perceptual.yaml").style_layers)
    vgg = VGG19Features(layers)
    try:
        found = {style: traces(style, layers, vgg) for style in styles}
    except StylenetError as error:  # a painting not found or unreadable: its one line
        parser.exit(2, f"error: {error}\n")
    per_style = dict(sorted(found.items(), key=lambda item: -sum(item[1])))  # the largest trace first
    header = ["style", *layers, "sum", *(f"{clip['clip']} warping error" for clip in clips)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for style, values in per_style.items():
        errors = [f"{clip['warping_error'][f'{args.which}/{style}']:.5f}" for clip in clips]
        print("| " + " | ".join([style, *(f"{v:.0f}" for v in values), f"{sum(values):.0f}", *errors]) + " |")
    sums = [sum(values) for values in per_style.values()]
    for clip in clips if len(per_style) >= 3 else []:  # fewer styles give no rank worth the name
        errors = [clip["warping_error"][f"{args.which}/{style}"] for style in per_style]
        print(f"\n{clip['clip']}: rank correlation of warping error with the trace {spearman(sums, errors):+.2f}")


if __name__ == "__main__":
    main()
