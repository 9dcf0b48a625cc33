"""Gram matrices, the style representation of Gatys, Ecker & Bethge 2016."""

import torch


def _pixels_by_channels(features: torch.Tensor) -> torch.Tensor:
    """`features` (B, C, H, W) as (B, HW, C), a view of them in either memory layout.

    Channels-last features (the fast training path) are (B, HW, C) in memory; reshaping them to
    (B, C, HW) would copy every activation of the style layers each step.
    """
    b, c, h, w = features.shape
    if features.is_contiguous() or not features.is_contiguous(memory_format=torch.channels_last):
        return features.reshape(b, c, h * w).transpose(1, 2)
    return features.permute(0, 2, 3, 1).reshape(b, h * w, c)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of `features` (B, C, H, W), normalised by C*H*W: (B, C, C) in float32
    (float64 for float64 features).

    bf16 features (mixed-precision training) are multiplied as they are, on the CPU's bf16 matrix
    units where it has them: the product accumulates in float32 and only the result is rounded, a
    relative error of about 2e-3, far below the distance between a stylised output's Gram matrix
    and the painting's; in float32 they were a large share of the fast training step
    (docs/performance.md). Other dtypes are multiplied in float32 even under autocast: squared
    Caffe-scale activations overflow fp16. The backward is autograd's: a backward of one product
    written as an autograd.Function made every gradient of a compiled bf16 step NaN when a network
    of several styles trained with the temporal term (tests/test_speed_options.py).
    """
    b, c, h, w = features.shape
    result_dtype = torch.promote_types(features.dtype, torch.float32)
    if features.dtype not in (torch.bfloat16, result_dtype):
        features = features.to(result_dtype)
    # autocast knows no meta device; meta tensors (shapes only) are how the benchmark counts FLOPs
    device_type = "cpu" if features.device.type == "meta" else features.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        flat = _pixels_by_channels(features)  # (B, HW, C)
        return torch.bmm(flat.transpose(1, 2), flat).to(result_dtype) / (c * h * w)  # (B, C, C)
