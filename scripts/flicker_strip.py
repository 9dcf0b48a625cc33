"""The README's flicker strip: consecutive frames of a clip in two models, and what changed between frames.

    python scripts/flicker_strip.py CLIP --model MODEL --baseline MODEL [--style NAME] -o docs/flicker_strip.jpg

One row per frame: the input; the baseline's stylisation and how it differs from the previous one carried
along by the input's optical flow (bright: flicker; black: stable, or masked as occluded); the same two for
the model. Each change is labelled with that frame pair's warping error, the quantity `stylenet evaluate
--video` averages over a clip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from contact_sheet import contact_sheet
from PIL import Image

from stylenet import load_model
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.video import read_frames
from stylenet.losses.temporal import masked_mse, warp
from stylenet.stability.flow import FrameFlow

TILE_WIDTH = 320
CHANGE_GAIN = 4  # differences are small: brighten them to be seen


def _tile(image: torch.Tensor) -> Image.Image:
    picture = Image.fromarray(to_array(image.clamp(0, 1)))
    return picture.resize((TILE_WIDTH, round(picture.height * TILE_WIDTH / picture.width)), Image.Resampling.LANCZOS)


def _columns(name: str, stylizer, frames, flows) -> list[list[tuple[str, Image.Image]]]:
    """Per frame after the first: its stylisation and its change since the previous one, as two labelled tiles."""
    outputs = [stylizer(to_tensor(frame).unsqueeze(0)) for frame in frames]
    cells = []
    for index, output in enumerate(outputs[1:], start=1):
        flow, mask = flows[index - 1]
        carried, _ = warp(outputs[index - 1], flow)
        error = float(masked_mse(output, carried, mask)[0])
        change = ((output - carried).abs().mean(1, keepdim=True) * mask * CHANGE_GAIN).expand(-1, 3, -1, -1)
        cells.append([(name, _tile(output[0])), (f"change: {error:.5f}", _tile(change[0]))])
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--style", help="for models of several styles: the one to show (default: the first)")
    parser.add_argument("--start", type=int, default=40, help="first frame shown")
    parser.add_argument("--count", type=int, default=3, help="frame pairs shown")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    frames = list(read_frames(args.clip, args.start + args.count + 1))[args.start :]
    flow_of = FrameFlow()
    flows = [flow_of(previous, current) for previous, current in zip(frames[:-1], frames[1:], strict=True)]
    rows = [[(f"input, frame {args.start + i}", _tile(to_tensor(frame)))] for i, frame in enumerate(frames[1:], 1)]
    for name, model in (("baseline", args.baseline), ("model", args.model)):
        stylizer = load_model(model, precision="fp32", style=args.style)
        for row, cells in zip(rows, _columns(name, stylizer, frames, flows), strict=True):
            row += cells
    args.output.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(rows).save(args.output, quality=88)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
