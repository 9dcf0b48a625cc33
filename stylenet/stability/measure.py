"""Warping errors: how far each stylised frame is from the previous one carried along by the motion.

The measure of Lai et al. 2018 and Ruder et al. 2016: mean squared difference on [0, 1] RGB between
stylised frame t+1 and stylised frame t warped onto it, over the pixels the flow can vouch for. The
input video's own error, with the same flows and masks, is the floor the flow estimate allows.

`exact_pairs` needs no flow estimate: each frame is paired with a copy moved by a known smooth random
flow plus noise (what training's temporal term uses), so the warp is exact and only the model errs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from stylenet.imageio import to_tensor
from stylenet.inference.stylizer import Stylizer
from stylenet.losses.temporal import TemporalPair, temporal_error
from stylenet.stability.flow import FrameFlow


def clip_errors(
    stylizers: dict[str, Stylizer], frames: Iterable[np.ndarray], keep: dict[int, dict[str, torch.Tensor]] | None = None
) -> dict[str, list[float]]:
    """Per consecutive pair of `frames` (RGB uint8), the warping error of the input ("input") and of each
    stylizer's output (by its name): lists of len(frames) - 1.

    `keep`: frame index -> {} to fill with that frame's stylisations by name, for `exact_pairs` to reuse."""
    flow_of = FrameFlow()
    errors: dict[str, list[float]] = {"input": [], **{name: [] for name in stylizers}}
    previous_frame: np.ndarray | None = None
    previous: dict[str, torch.Tensor] = {}
    for index, frame in enumerate(frames):
        current = {"input": to_tensor(frame).unsqueeze(0)}  # (1, 3, H, W) in [0, 1]
        for name, stylizer in stylizers.items():
            current[name] = stylizer(current["input"]).cpu().float()
        if keep is not None and index in keep:
            keep[index].update((name, current[name]) for name in stylizers)
        if previous_frame is not None:
            flow, mask = flow_of(previous_frame, frame)
            for name, image in current.items():
                errors[name].append(float(temporal_error(previous[name], image, flow, mask)[0]))
        previous_frame, previous = frame, current
    return errors


def exact_pairs(
    stylizers: dict[str, Stylizer],
    frames: list[np.ndarray],
    flow: float,
    noise: float,
    seed: int = 0,
    stylized: list[dict[str, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """Mean error over `frames` each paired with a copy moved by a known random flow of up to `flow` px plus
    Gaussian noise of `noise` std: of the input ("input": the noise alone) and of each stylizer's output.

    `stylized`: per frame, its stylisations by stylizer name where already made (`clip_errors(keep=)`)."""
    pair = TemporalPair(flow, noise)
    generator = torch.Generator().manual_seed(seed)
    sums = {"input": 0.0, **{name: 0.0 for name in stylizers}}
    for index, frame in enumerate(frames):
        image = to_tensor(frame).unsqueeze(0)
        moved, known, _ = pair(image, generator)  # the default motion compares every pixel
        sums["input"] += float(temporal_error(image, moved, known)[0])
        made = stylized[index] if stylized is not None else {}
        for name, stylizer in stylizers.items():
            still = made[name] if name in made else stylizer(image).cpu().float()
            sums[name] += float(temporal_error(still, stylizer(moved).cpu().float(), known)[0])
    return {name: total / max(len(frames), 1) for name, total in sums.items()}
