"""Stylising images larger than memory allows, one overlapping tile at a time.

The tiles are cross-faded with a raised-cosine (Hann) window, the usual remedy for seams in tiled inference
(as in overlap-add / weighted-overlap-add signal processing, and the tiled VAE decoders of latent diffusion).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

MIN_TILE = 16


def default_overlap(tile: int) -> int:
    """tile // 8, at least 8 px, and always smaller than tile // 2 (so a tile's two ramps never meet)."""
    return min(max(8, tile // 8), tile // 2 - 1)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis of `size` px.

    One tile of the whole axis when it fits; otherwise the fewest full-size tiles overlapping by at least
    `overlap` px, spread evenly from 0 to `size - tile` (so the last one is shifted inward, never cut short).
    """
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))  # fewest n with (n - 1) * (tile - overlap) >= size - tile
    count = max(count, 2)
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def _rising_ramp(length: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Weights of the later tile across an overlap of `length` px; the earlier tile gets the mirror image.

    The outer quarter on each side is left out entirely (weight 0 for the tile whose edge it is), because a
    tile's edge pixels are the ones distorted by the network's padding; the middle half is a Hann ramp,
    sin^2 rising to 1, whose mirror is cos^2, so the two tiles' weights sum to exactly 1 across the overlap.
    """
    margin = length // 4
    ramp = length - 2 * margin
    k = torch.arange(length, dtype=torch.float64)  # (length,)
    t = ((k - margin + 0.5) / ramp).clamp(0.0, 1.0)  # 0 in the left margin, 1 in the right one
    return (torch.sin(0.5 * math.pi * t) ** 2).to(device=device, dtype=dtype)  # (length,)


def _axis_weights(starts: list[int], extent: int, dtype: torch.dtype, device: torch.device) -> list[Tensor]:
    """One 1-D weight vector, (extent,), per tile along an axis: 1 inside, ramps where it overlaps a neighbour."""
    weights = []
    for i, start in enumerate(starts):
        w = torch.ones(extent, dtype=dtype, device=device)  # (extent,)
        if i > 0:  # rises across the overlap with the previous tile
            left = starts[i - 1] + extent - start
            if left > 0:
                w[:left] = torch.minimum(w[:left], _rising_ramp(left, dtype, device))
        if i < len(starts) - 1:  # falls across the overlap with the next tile
            right = start + extent - starts[i + 1]
            if right > 0:
                w[-right:] = torch.minimum(w[-right:], _rising_ramp(right, dtype, device).flip(0))
        weights.append(w)
    return weights


@torch.no_grad()
def stylize_tiled(fn: Callable[[Tensor], Tensor], images: Tensor, tile: int, overlap: int | None = None) -> Tensor:
    """Applies `fn`, (N, C, h, w) -> (N, C, h, w), to `images` (N, C, H, W) in overlapping tiles of <= tile x tile px.

    Only one tile goes through `fn` at a time, so its memory is bounded by the tile, not the image; the tiles
    are blended back with separable raised-cosine weights normalised by their sum, which leaves no seams.
    An image that fits in one tile is passed to `fn` whole. Runs under `torch.no_grad()`: kept autograd
    graphs of every tile would defeat the memory bound. The result is in the dtype `fn` returns.

    `overlap` (default `default_overlap(tile)`) is the minimum overlap between neighbouring tiles; the tiles
    are spread evenly, so the actual overlap is often larger.
    """
    if tile < MIN_TILE:
        raise ValueError(f"tile must be at least {MIN_TILE} px, not {tile}")
    if overlap is None:
        overlap = default_overlap(tile)
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap must be in [0, tile // 2 = {tile // 2}), not {overlap}")
    if images.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), not shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height <= tile and width <= tile:
        return fn(images)

    th, tw = min(tile, height), min(tile, width)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    output: Tensor | None = None
    weight_sum: Tensor | None = None
    for y, wy in zip(ys, _axis_weights(ys, th, torch.float64, images.device), strict=True):
        for x, wx in zip(xs, _axis_weights(xs, tw, torch.float64, images.device), strict=True):
            # A copy, so that an `fn` working in place cannot touch the caller's image.
            out = fn(images[:, :, y : y + th, x : x + tw].clone())  # (N, C, th, tw)
            if out.shape != (images.shape[0], images.shape[1], th, tw):
                raise ValueError(
                    f"fn must keep the tile's shape {(images.shape[0], images.shape[1], th, tw)}, "
                    f"returned {tuple(out.shape)}"
                )
            if output is None:  # allocated from the first result: fn decides dtype and device
                acc_dtype = torch.promote_types(out.dtype, torch.float32)  # half-precision sums would lose bits
                output = torch.zeros(*images.shape[:2], height, width, dtype=acc_dtype, device=out.device)
                weight_sum = torch.zeros(height, width, dtype=acc_dtype, device=out.device)
                result_dtype = out.dtype
            weight = torch.outer(wy, wx).to(device=output.device, dtype=output.dtype)  # (th, tw)
            output[:, :, y : y + th, x : x + tw] += out.to(output.dtype) * weight  # (N, C, th, tw)
            weight_sum[y : y + th, x : x + tw] += weight
    # Every pixel has a positive weight: each lies in some tile away from that tile's discarded margins.
    # In place: a quotient tensor would add another image-sized buffer at the peak (memory.py counts 16 B/px).
    return output.div_(weight_sum).to(result_dtype)  # (N, C, H, W)
