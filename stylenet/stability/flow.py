"""Optical flow between video frames, with the pixels it cannot vouch for masked out.

OpenCV's DIS flow (Kroeger et al. 2016): classical, fast on a CPU and needs no downloaded weights. A
pixel counts only where the forward and backward flows agree (the occlusion test of Ruder et al.
2016) and its match lies inside the frame: elsewhere a warp compares unrelated content.
"""

from __future__ import annotations

import numpy as np
import torch

from stylenet.errors import StylenetError
from stylenet.losses.temporal import warp


def _cv2():
    try:
        import cv2
    except ImportError as error:
        raise StylenetError('measuring video stability needs OpenCV: pip install "stylenet[video]"') from error
    return cv2


# The last pyramid level DIS refines: 0 is the frame itself, each level above it half that size.
FINEST_SCALE = 0


class FrameFlow:
    """`flow(previous, current)`: the backward flow from `current` to `previous` and its mask of trusted pixels.

    Both frames are RGB uint8 (H, W, 3); the flow is (1, 2, H, W) in pixels, the mask (1, 1, H, W) of 0/1,
    in the convention of `stylenet.losses.temporal.warp`: `warp(previous, flow)` lines `previous` up with
    `current`."""

    def __init__(self):
        cv2 = _cv2()
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        # The preset stops at half the frame's resolution and upsamples; every flow error it leaves is
        # charged to the model's textured output. Down to full resolution, vtest.avi at 384 px leaves a
        # third of the input's own error (docs/video.md).
        self._dis.setFinestScale(FINEST_SCALE)

    def _flow(self, source: np.ndarray, target: np.ndarray) -> torch.Tensor:
        """For each pixel of `source`, where it moved to in `target`: (1, 2, H, W)."""
        gray = [self._cv2.cvtColor(np.ascontiguousarray(f), self._cv2.COLOR_RGB2GRAY) for f in (source, target)]
        flow = self._dis.calc(gray[0], gray[1], None)  # (H, W, 2): dx, dy
        return torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0).float()

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        backward = self._flow(current, previous)  # current -> previous
        forward = self._flow(previous, current)  # previous -> current
        forward_there, inside = warp(forward, backward)  # the forward flow where each current pixel came from
        # Ruder et al. 2016: the two flows must cancel, within a tolerance that grows with the motion.
        mismatch = (backward + forward_there).pow(2).sum(1, keepdim=True)
        tolerance = 0.01 * (backward.pow(2).sum(1, keepdim=True) + forward_there.pow(2).sum(1, keepdim=True)) + 0.5
        return backward, inside * (mismatch <= tolerance).float()
