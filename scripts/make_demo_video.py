"""Writes a short demo clip (a slow pan across scikit-image's CC0 photos) for trying video stylisation.

python scripts/make_demo_video.py demo.mp4 [--seconds 4] [--fps 24] [--size 640x360] [--overwrite]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from stylenet.atomic_write import folder_problem, replacing

# Containers that hold H.264 and that players open.
SUFFIXES = (".mp4", ".mkv", ".mov")
# Each side in px: H.264's 4:2:0 pictures need even sides; past 4K the photo strip alone takes gigabytes.
MIN_SIDE, MAX_SIDE = 16, 3840
MAX_FPS = 240


def frame_size(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    """(width, height) from WIDTHxHEIGHT; any other text is `parser.error`'s one line."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        parser.error(f"--size {text}: give WIDTHxHEIGHT in px, such as 640x360")
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        parser.error(f"--size {text}: each side must be from {MIN_SIDE} to {MAX_SIDE} px")
    if width % 2 or height % 2:
        parser.error(f"--size {text}: H.264 needs even sides, such as {width + width % 2}x{height + height % 2}")
    return width, height


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[int, int, int]:
    """(width, height, frames) once every argument is known to work; else `parser.error`'s one line."""
    width, height = frame_size(parser, args.size)
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds must be more than 0, not {args.seconds:g}")
    if not 1 <= args.fps <= MAX_FPS:
        parser.error(f"--fps must be from 1 to {MAX_FPS}, not {args.fps}")
    frames = round(args.seconds * args.fps)
    if frames < 1:
        parser.error(f"--seconds {args.seconds:g} at --fps {args.fps} is less than one frame: give a longer clip")
    output = args.output
    if output.suffix.lower() not in SUFFIXES:
        parser.error(f"{output}: name the clip with one of {', '.join(SUFFIXES)} (an H.264 video)")
    if output.is_dir():
        parser.error(f"{output} is a folder: name the clip's file")
    if output.exists() and not args.overwrite:
        parser.error(f"{output} exists: pass --overwrite to replace it, or name another file")
    problem = folder_problem(output.parent)
    if problem is not None:
        parser.error(f"{output}: {problem}")
    return width, height, frames


def photo_strip(width: int, height: int) -> np.ndarray:
    """scikit-image's photos side by side at the clip's height (H, W, 3); where that strip would not be twice the
    clip's width (a wide clip), they are scaled up and cut around the middle, so the pan still moves."""
    from skimage import data

    photos = [Image.fromarray(p) for p in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())]
    natural = sum(p.width * height / p.height for p in photos)
    tall = max(height, math.ceil(height * 2 * width / natural))
    strip = np.concatenate([np.asarray(p.resize((round(p.width * tall / p.height), tall))) for p in photos], 1)
    top = (tall - height) // 2
    return strip[top : top + height]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help=f"the clip to write ({', '.join(SUFFIXES)})")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT in px (even numbers)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    args = parser.parse_args(argv)
    width, height, frames = check(parser, args)
    import av

    strip = photo_strip(width, height)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with replacing(args.output) as partial, av.open(str(partial), "w") as container:  # an old clip stays until done
        stream = container.add_stream("libx264", rate=args.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            left = round((strip.shape[1] - width) * index / max(1, frames - 1))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(strip[:, left : left + width]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    print(f"wrote {args.output}: {frames} frames at {args.fps} fps, {width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
