"""Post-processing of stylized images: colour preservation and style strength.

Both functions take and return float images (N, 3, H, W), RGB in [0, 1], and never modify their inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# RGB -> YIQ (NTSC 1953, FCC coefficients). Y is the luma Gatys et al. transfer the style to; I and Q carry the
# colour. The inverse is computed from this matrix rather than typed in, so the round trip is exact to rounding.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _check_pair(content: Tensor, stylized: Tensor) -> None:
    if content.shape != stylized.shape:
        raise ValueError(
            f"content and stylized images must have the same shape, not {tuple(content.shape)} "
            f"and {tuple(stylized.shape)}"
        )


def _apply_color_matrix(matrix: Tensor, images: Tensor) -> Tensor:
    """Multiplies every pixel's 3-vector (dim -3) by `matrix`, in the images' dtype and device."""
    matrix = matrix.to(device=images.device, dtype=images.dtype)
    return torch.einsum("ij,...jhw->...ihw", matrix, images)  # (N, 3, H, W)


def rgb_to_yiq(images: Tensor) -> Tensor:
    """RGB (N, 3, H, W) -> YIQ (N, 3, H, W): channel 0 is luminance, channels 1-2 chroma."""
    return _apply_color_matrix(_RGB_TO_YIQ, images)


def yiq_to_rgb(images: Tensor) -> Tensor:
    """YIQ (N, 3, H, W) -> RGB (N, 3, H, W), the exact inverse of `rgb_to_yiq` (not clamped)."""
    return _apply_color_matrix(_YIQ_TO_RGB, images)


def preserve_color(content: Tensor, stylized: Tensor) -> Tensor:
    """Keeps the content image's colours and only the stylized image's luminance.

    Luminance-only transfer of Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural Artistic
    Style Transfer" (arXiv 1606.05897), applied after the fact to a feed-forward output: both images go to YIQ,
    Y comes from `stylized`, I and Q from `content`, and the result goes back to RGB clamped to [0, 1].
    (The paper also matches the style's luminance histogram to the content's before optimising; a trained
    feed-forward network has no such step, so it is not done here.)
    """
    _check_pair(content, stylized)
    if content.ndim < 3 or content.shape[-3] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), not shape {tuple(content.shape)}")
    dtype = torch.promote_types(torch.promote_types(content.dtype, stylized.dtype), torch.float32)
    luma = rgb_to_yiq(stylized.to(dtype))[..., :1, :, :]  # (N, 1, H, W)
    chroma = rgb_to_yiq(content.to(dtype))[..., 1:, :, :]  # (N, 2, H, W)
    # Out-of-gamut YIQ triples (bright luma with saturated chroma) land outside [0, 1] in RGB: clamp them.
    return yiq_to_rgb(torch.cat([luma, chroma], dim=-3)).clamp(0.0, 1.0)  # (N, 3, H, W)


def blend(content: Tensor, stylized: Tensor, strength: float) -> Tensor:
    """Linear interpolation from `content` (strength 0) to `stylized` (strength 1), a style-strength slider.

    The ends are exact copies, not the result of arithmetic, so strength 0 and 1 reproduce the inputs bit for bit.
    """
    _check_pair(content, stylized)
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be a number in [0, 1], not {strength!r}")
    if strength == 0:
        return content.clone()
    if strength == 1:
        return stylized.clone()
    return torch.lerp(content, stylized, float(strength))  # (N, 3, H, W)
