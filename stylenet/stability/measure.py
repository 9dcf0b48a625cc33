"""Warping errors: how far each stylised frame is from the previous one carried along by the motion.

The measure of Lai et al. 2018 and Ruder et al. 2016: mean squared difference on [0, 1] RGB between
stylised frame t+1 and stylised frame t warped onto it, over the pixels the flow can vouch for. The
input video's own error, with the same flows and masks, is the floor the flow estimate allows.

`exact_pairs` needs no flow estimate: each frame is paired with a copy moved by a known smooth random
flow plus noise (what training's temporal term uses), so the warp is exact and only the model errs.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

import numpy as np
import torch

from stylenet.imageio import to_tensor
from stylenet.inference.stylizer import Stylizer
from stylenet.losses.temporal import TemporalPair, temporal_error
from stylenet.stability.flow import FrameFlow


class ExactPairs:
    """Running mean of the exact-pair errors (see `exact_pairs`) of the frames handed to `add`, one at a time,
    so that a clip's frames and their stylisations need not be held until the end."""

    def __init__(self, stylizers: dict[str, Stylizer], flow: float, noise: float, seed: int = 0) -> None:
        self.stylizers = stylizers
        self.pair = TemporalPair(flow, noise)
        self.generator = torch.Generator().manual_seed(seed)  # one stream: each frame's motion depends on the order
        self.sums = {"input": 0.0, **{name: 0.0 for name in stylizers}}
        self.count = 0

    def add(self, frame: np.ndarray, stylized: dict[str, torch.Tensor] | None = None) -> None:
        """Pair `frame` (RGB uint8) with its moved copy; `stylized`: its stylisations by name where already made."""
        image = to_tensor(frame).unsqueeze(0)
        moved, known, _ = self.pair(image, self.generator)  # the default motion compares every pixel
        self.sums["input"] += float(temporal_error(image, moved, known)[0])
        made = stylized or {}
        for name, stylizer in self.stylizers.items():
            still = made[name] if name in made else stylizer(image).cpu().float()
            self.sums[name] += float(temporal_error(still, stylizer(moved).cpu().float(), known)[0])
        self.count += 1

    def means(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


def clip_errors(
    stylizers: dict[str, Stylizer],
    frames: Iterable[np.ndarray],
    exact: ExactPairs | None = None,
    exact_at: Container[int] = (),
) -> dict[str, list[float]]:
    """Per consecutive pair of `frames` (RGB uint8), the warping error of the input ("input") and of each
    stylizer's output (by its name): lists of len(frames) - 1. `frames` is read once, one frame at a time.

    `exact`: given the frames whose indices are in `exact_at` as they come, with the stylisations made here."""
    flow_of = FrameFlow()
    errors: dict[str, list[float]] = {"input": [], **{name: [] for name in stylizers}}
    previous_frame: np.ndarray | None = None
    previous: dict[str, torch.Tensor] = {}
    for index, frame in enumerate(frames):
        current = {"input": to_tensor(frame).unsqueeze(0)}  # (1, 3, H, W) in [0, 1]
        for name, stylizer in stylizers.items():
            current[name] = stylizer(current["input"]).cpu().float()
        if exact is not None and index in exact_at:
            exact.add(frame, current)
        if previous_frame is not None:
            flow, mask = flow_of(previous_frame, frame)
            for name, image in current.items():
                errors[name].append(float(temporal_error(previous[name], image, flow, mask)[0]))
        previous_frame, previous = frame, current
    return errors


def exact_pairs(
    stylizers: dict[str, Stylizer], frames: Iterable[np.ndarray], flow: float, noise: float, seed: int = 0
) -> dict[str, float]:
    """Mean error over `frames` each paired with a copy moved by a known random flow of up to `flow` px plus
    Gaussian noise of `noise` std: of the input ("input": the noise alone) and of each stylizer's output."""
    measure = ExactPairs(stylizers, flow, noise, seed)
    for frame in frames:
        measure.add(frame)
    return measure.means()
