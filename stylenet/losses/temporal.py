"""Temporal stability from still photos: known random motion, and the warp that undoes it.

Wang et al. 2020 ("Consistent Video Style Transfer via Compound Regularization") train a per-frame
network to be stable without video or a flow network: a photo and a copy of it moved by a random
smooth flow plus noise stand in for two consecutive frames, and the stylised copy is asked to equal
the stylised photo moved by the same flow. The same pair, with its exact flow, is also the flow-free
stability measure of `stylenet evaluate` (stylenet/evaluate_video.py).

Flows here are backward maps in pixels: `flow[:, :, y, x] = (dx, dy)` says that pixel (x, y) of the
moved image comes from (x + dx, y + dy) of the original.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

# Knots of the local motion's control grid per side: a few means smooth, object-sized swirls.
_GRID = 4
# The "objects" and "still" motions: knots of the random field whose highest values are the objects,
# and the share of the picture they cover.
_OBJECT_GRID = 6
_OBJECT_SHARE = 0.2
# By default, how far either side of the objects' outlines the output is not compared (a new edge
# appears there in the second frame, which a painting may draw anew).
SEAM = 3


def random_smooth_flow(
    batch: int,
    height: int,
    width: int,
    magnitude: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B, 2, H, W) flow: a global shift of up to `magnitude` pixels plus a smooth local motion about half
    as large (a bicubic-upsampled random grid), what a camera pan and moving things do between frames."""
    device = generator.device if generator is not None else device
    shift = (torch.rand(batch, 2, 1, 1, generator=generator, device=device) * 2 - 1) * magnitude  # (B, 2, 1, 1)
    knots = torch.randn(batch, 2, _GRID, _GRID, generator=generator, device=device) * (magnitude / 2)
    local = F.interpolate(knots, size=(height, width), mode="bicubic", align_corners=True)
    return shift + local


def random_shift_flow(
    batch: int,
    height: int,
    width: int,
    magnitude: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B, 2, H, W) flow: a shift of the whole image by up to `magnitude` whole pixels each way. Warping by
    it moves pixels without interpolating between them, so neither frame of the pair is blurred."""
    device = generator.device if generator is not None else device
    reach = int(magnitude)
    shift = torch.randint(-reach, reach + 1, (batch, 2, 1, 1), generator=generator, device=device)
    return shift.float().expand(batch, 2, height, width)


def _blobs(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    seam: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random blobs covering about a fifth of the picture, (B, 1, H, W) of 0/1, and the (B, 1, H, W) mask of
    the pixels to compare: all but a band of `seam` px either side of the blobs' outlines, where the second
    frame has an edge the first had not."""
    field = torch.randn(batch, 1, _OBJECT_GRID, _OBJECT_GRID, generator=generator, device=device)
    field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)
    threshold = field.flatten(1).quantile(1 - _OBJECT_SHARE, dim=1).view(batch, 1, 1, 1)
    objects = (field > threshold).float()
    grown = F.max_pool2d(objects, 2 * seam + 1, stride=1, padding=seam)
    shrunk = -F.max_pool2d(-objects, 2 * seam + 1, stride=1, padding=seam)
    return objects, 1 - (grown - shrunk)


def random_object_flow(
    batch: int,
    height: int,
    width: int,
    magnitude: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    seam: int = SEAM,
    still: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, H, W) flow: random blobs (about a fifth of the picture) that move by a shift of their own of
    up to `magnitude` pixels, as people walk past, over the smooth motion of `random_smooth_flow` for the
    background; and the (B, 1, H, W) mask of the pixels to compare (`_blobs`).

    `still`: the background does not move at all and the blobs move by whole pixels, as a fixed camera
    sees people walk. Every compared pixel then warps exactly, so the term asks only that what moves
    leaves the rest of the painting as it was, never that a texture equal a blurred copy of itself."""
    device = generator.device if generator is not None else device
    if still:
        objects, compared = _blobs(batch, height, width, generator, device, seam)
        shift = random_shift_flow(batch, 1, 1, max(magnitude, 1.0), generator, device)  # (B, 2, 1, 1)
        return objects * shift, compared
    background = random_smooth_flow(batch, height, width, magnitude, generator, device)
    objects, compared = _blobs(batch, height, width, generator, device, seam)
    shift = (torch.rand(batch, 2, 1, 1, generator=generator, device=device) * 2 - 1) * magnitude
    return objects * shift + (1 - objects) * background, compared


def _whole_frame(motion: Callable[..., torch.Tensor]) -> Callable[..., tuple[torch.Tensor, None]]:
    """A motion with nothing to hide: every pixel of its pair is compared (no mask, so no seam either)."""

    def flow_and_no_mask(*args: Any, seam: int = SEAM) -> tuple[torch.Tensor, None]:
        return motion(*args), None

    return flow_and_no_mask


MOTIONS = {
    "smooth": _whole_frame(random_smooth_flow),
    "shift": _whole_frame(random_shift_flow),
    "objects": random_object_flow,
    "still": partial(random_object_flow, still=True),
}


def warp(images: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`images` (B, C, H, W) moved by backward `flow` (B, 2, H, W), and the (B, 1, H, W) mask of pixels
    whose source lies inside the image (the others are border copies and say nothing)."""
    _, _, height, width = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    source_x = xs + flow[:, 0]  # (B, H, W)
    source_y = ys + flow[:, 1]
    # grid_sample's coordinates: -1 and 1 are the centres of the edge pixels (align_corners=True).
    grid = torch.stack((2 * source_x / max(width - 1, 1) - 1, 2 * source_y / max(height - 1, 1) - 1), dim=-1)
    moved = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    inside = (source_x >= 0) & (source_x <= width - 1) & (source_y >= 0) & (source_y <= height - 1)
    return moved, inside.unsqueeze(1).to(images.dtype)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of `a` and `b` (B, C, H, W) over the pixels `mask` (B, 1, H, W) keeps: (B,)."""
    squared = (a - b).pow(2).mean(1, keepdim=True) * mask
    return squared.sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1.0)


class TemporalPair:
    """Makes the second "frame" of a still photo: moved by a random smooth flow, plus sensor-like noise.

    `flow`: the largest global shift in pixels (the local motion adds about half as much again);
    `noise`: the standard deviation of the Gaussian noise added, on [0, 1] pixel values; `motion`:
    "smooth" (a shift and a smooth local motion, sub-pixel), "shift" (whole-pixel shifts of the whole
    image, which warp exactly: the loss then never compares a texture with a blurred copy of itself),
    "objects" (the smooth motion, with blobs of the photo moving by shifts of their own across it) or
    "still" (a background that does not move, with blobs moving by whole pixels: a fixed camera);
    `seam`: for the blobs of "objects" and "still", how many px either side of their outlines are not
    compared."""

    def __init__(self, flow: float, noise: float, motion: str = "smooth", seam: int = SEAM):
        if flow < 0 or noise < 0:
            raise ValueError("the temporal flow and noise magnitudes must be >= 0")
        if isinstance(seam, bool) or not isinstance(seam, (int, float)) or seam < 0 or not float(seam).is_integer():
            raise ValueError(f"the seam must be a whole number of pixels >= 0, not {seam!r}")
        seam = int(seam)
        if motion not in MOTIONS:
            raise ValueError(f"the motion must be one of {', '.join(MOTIONS)}, not {motion!r}")
        self.flow = float(flow)
        self.noise = float(noise)
        self.motion = partial(MOTIONS[motion], seam=seam)  # only the blob motions have outlines to leave out

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`images` (B, 3, H, W) in [0, 1] -> (the moved, noisy copies, their flow (B, 2, H, W), and the
        (B, 1, H, W) mask of the pixels the pair may be compared on, or None for all of them)."""
        batch, _, height, width = images.shape
        flow, compared = self.motion(batch, height, width, self.flow, generator, images.device)
        flow = flow.to(images.device)
        moved, _ = warp(images, flow)
        noise = torch.randn(moved.shape, generator=generator, device=flow.device).to(images.device) * self.noise
        return (moved + noise).clamp(0, 1), flow, None if compared is None else compared.to(images.device)


def temporal_error(
    first: torch.Tensor, second: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """How far the stylised second frame `second` is from the stylised first `first` moved by `flow`: (B,)
    mean squared differences on [0, 1] pixels, over the pixels the flow sees and `mask` (B, 1, H, W), where
    given, keeps (an estimated flow's trusted pixels)."""
    moved, inside = warp(first, flow)
    return masked_mse(second, moved, inside if mask is None else inside * mask)
