"""Writes a short demo clip (a slow pan across scikit-image's CC0 photos) for trying video stylisation.

python scripts/make_demo_video.py demo.mp4 [--seconds 4] [--fps 24] [--size 640x360]
"""

from __future__ import annotations

import argparse

import av
import numpy as np
from PIL import Image
from skimage import data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (even numbers)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    # A wide strip of photos, each scaled to the clip's height; the camera pans along it.
    photos = [Image.fromarray(p) for p in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())]
    strip = np.concatenate([np.asarray(p.resize((round(p.width * height / p.height), height))) for p in photos], 1)
    frames = round(args.seconds * args.fps)
    with av.open(args.output, "w") as container:
        stream = container.add_stream("libx264", rate=args.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            left = round((strip.shape[1] - width) * index / max(1, frames - 1))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(strip[:, left : left + width]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    print(f"wrote {args.output}: {frames} frames at {args.fps} fps, {width}x{height}")


if __name__ == "__main__":
    main()
