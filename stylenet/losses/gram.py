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


class _ChannelProducts(torch.autograd.Function):
    """Fᵀ F for F (B, HW, C), with a backward of one matrix product, F (G + Gᵀ), where autograd would
    take one per factor and add the two in different memory layouts."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return torch.bmm(flat.transpose(1, 2), flat)  # (B, C, C)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        both = (grad + grad.transpose(1, 2)).to(flat.dtype)  # (B, C, C), symmetric
        if flat.transpose(1, 2).is_contiguous():  # (B, C, HW) in memory: the gradient in that layout too
            return torch.bmm(both, flat.transpose(1, 2)).transpose(1, 2)
        return torch.bmm(flat, both)  # (B, HW, C)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of `features` (B, C, H, W), normalised by C*H*W: (B, C, C) in float32
    (float64 for float64 features).

    bf16 features (mixed-precision training) are multiplied as they are, on the CPU's bf16 matrix
    units where it has them: the product accumulates in float32 and only the result is rounded, a
    relative error of about 2e-3, far below the distance between a stylised output's Gram matrix
    and the painting's; in float32 they were a large share of the fast training step
    (docs/performance.md). Other dtypes are multiplied in float32 even under autocast: squared
    Caffe-scale activations overflow fp16.
    """
    b, c, h, w = features.shape
    result_dtype = torch.promote_types(features.dtype, torch.float32)
    if features.dtype not in (torch.bfloat16, result_dtype):
        features = features.to(result_dtype)
    # autocast knows no meta device; meta tensors (shapes only) are how the benchmark counts FLOPs
    device_type = "cpu" if features.device.type == "meta" else features.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        return _ChannelProducts.apply(_pixels_by_channels(features)).to(result_dtype) / (c * h * w)  # (B, C, C)
