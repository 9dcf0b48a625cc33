"""A low-pass filter before each stride-2 convolution (`model.downsample=blur`).

Zhang 2019, "Making Convolutional Networks Shift-Invariant Again" (arXiv 1904.11486). The
encoder's two stride-2 convolutions sample their inputs two pixels apart, the photo four apart
in all. Detail finer than that grid aliases: a photo moved by 1 to 3 pixels meets the grid at
other points, and the network redraws its strokes instead of moving them, which is the flicker
of a slowly moving video (docs/video.md, "The four-pixel grid"). A strided convolution is a
convolution followed by subsampling, so blurring its input is blurring before the subsampling,
as Zhang's BlurPool does, at the cost of one depthwise 3x3 pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.networks import fast_ops

# The binomial filter [1, 2, 1] / 4 in each direction: every tap is exact in bf16.
_TAPS = torch.tensor([1.0, 2.0, 1.0]) / 4
KERNEL = torch.outer(_TAPS, _TAPS)  # (3, 3), sums to 1


def blur(x: Tensor, fast: bool = False) -> Tensor:
    """`x` (B, C, H, W) filtered channel by channel, with reflection at the borders (same size)."""
    channels = x.shape[1]
    kernel = KERNEL.to(x.device, x.dtype).expand(channels, 1, 3, 3)
    padded = fast_ops.reflection_pad(x, 1) if fast else F.pad(x, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel, groups=channels)  # in the input's layout, channels-last included
