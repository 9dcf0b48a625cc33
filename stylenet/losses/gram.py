"""Gram matrices, the style representation of Gatys, Ecker & Bethge 2016."""

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of `features` (B, C, H, W), normalised by C*H*W: (B, C, C).

    Computed in float32 even under autocast: squared Caffe-scale activations overflow fp16.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()  # (B, C, HW)
    # autocast knows no meta device; meta tensors (shapes only) are how the benchmark counts FLOPs
    device_type = "cpu" if features.device.type == "meta" else features.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)  # (B, C, C)
