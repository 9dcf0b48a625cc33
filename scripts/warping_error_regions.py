"""Where a model's warping error on a clip lies: near moving things, or on the still background.

    python scripts/warping_error_regions.py CLIP MODEL [MODEL ...] [--frames 30] [--size 384]

The error is the one `stylenet evaluate --video` reports (the same flow, mask and sizes). A pixel
counts as near motion where the input moved (flow over half a pixel, or a change over 0.08 after
warping), grown by `--reach` px, about half the network's receptive field: a change there may
legitimately change the painting. Per model and style: the mean error near motion, on the still
background, and the background's share of the total. A still background that flickers (the
instance norm's statistics shifting with whatever moves elsewhere) shows as a large share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from stylenet import load_model
from stylenet.imageio import to_tensor
from stylenet.inference.video import read_frames
from stylenet.losses.temporal import warp
from stylenet.stability.flow import FrameFlow
from stylenet.stability.run import fit_frame


def _near_motion(previous: torch.Tensor, current: torch.Tensor, flow: torch.Tensor, reach: int) -> torch.Tensor:
    """(1, 1, H, W) of 0/1: pixels of `current` within `reach` px of something that moved since `previous`."""
    moved_back, _ = warp(previous, flow)
    changed = (current - moved_back).abs().mean(1, keepdim=True) > 0.08
    moving = flow.pow(2).sum(1, keepdim=True).sqrt() > 0.5
    return F.max_pool2d((changed | moving).float(), 2 * reach + 1, stride=1, padding=reach)


@torch.no_grad()  # as a decorator, so that a caller's grad mode is back after main()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--reach", type=int, default=24)
    args = parser.parse_args()
    frames = [fit_frame(frame, args.size) for frame in read_frames(args.clip, args.frames)]
    inputs = [to_tensor(frame).unsqueeze(0) for frame in frames]
    flow_of = FrameFlow()
    pairs = []  # per consecutive pair: flow, trusted pixels, near-motion pixels
    for index in range(len(frames) - 1):
        flow, trusted = flow_of(frames[index], frames[index + 1])
        pairs.append((flow, trusted, _near_motion(inputs[index], inputs[index + 1], flow, args.reach)))
    share = sum(float((near * trusted).sum()) for _, trusted, near in pairs) / sum(
        float(trusted.sum()) for _, trusted, _ in pairs
    )
    print(f"{args.clip.name}: {len(frames)} frames at {frames[0].shape[1]}x{frames[0].shape[0]}")
    print(f"pixels near motion: {share:.0%} of those the flow vouches for")
    print("| model | style | warping error | near motion | still background | background's share |")
    print("|---|---|---|---|---|---|")
    for path in args.models:
        model = load_model(path, device="cpu", precision="fp32")
        for style in model.styles:
            stylizer = model.with_style(style)
            outputs = [stylizer(image).float() for image in inputs]
            sums = {"near": 0.0, "still": 0.0}
            counts = {"near": 0.0, "still": 0.0}
            for index, (flow, trusted, near) in enumerate(pairs):
                moved, inside = warp(outputs[index], flow)
                valid = inside * trusted
                error = (outputs[index + 1] - moved).pow(2).mean(1, keepdim=True) * valid
                for name, region in (("near", near), ("still", 1 - near)):
                    sums[name] += float((error * region).sum())
                    counts[name] += float((valid * region).sum())
            total = sums["near"] + sums["still"]
            print(
                f"| {path} | {style} | {total / (counts['near'] + counts['still']):.5f} "
                f"| {sums['near'] / counts['near']:.5f} | {sums['still'] / counts['still']:.5f} "
                f"| {sums['still'] / total:.0%} |"
            )


if __name__ == "__main__":
    main()
