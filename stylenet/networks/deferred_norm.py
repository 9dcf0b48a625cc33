"""Instance norms left for the next convolution to apply, in eager inference of one image.

Per channel, instance norm then ReLU is relu(s * y + t), with s = gamma / std and t = beta - s * mean.
Where s > 0 that equals s * max(y, -t / s) + t: the max is one pass over y in place, and s and t
fold into the next convolution's weights and bias. The fold is exact because every convolution
that takes such an activation pads by reflection or replication (or blurs first), which keeps a
per-channel constant constant. Against normalising in place and then rectifying in place, the
activation is read and written once fewer, and the statistics come from PyTorch's batch-norm
statistics kernel alone, which does not normalise (docs/performance.md, "Norms left to the next
convolution").

A residual block's sum x + s * y + t could be one pass as well (`torch.addcmul`, t left to the
next block): tried, it gained little and cost bf16 accuracy (the sum then carries each channel's
mean, rounded to bf16), so those norms run the plain way.

A norm with a scale of zero or below in some channel (s <= 0 there) runs the plain way; so do
activations under `MIN_BYTES`, a batch of several images (each would need weights of its own) and
anything that needs gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from stylenet.networks import low_memory_ops


class Deferred(NamedTuple):
    """An activation equal to `scale * values + shift` per channel, not yet computed."""

    values: Tensor  # (1, C, H, W)
    scale: Tensor  # (C,), >= 0 (0: a channel the ReLU zeroes); fp32 (fp64 for an fp64 activation)
    shift: Tensor  # (C,), as scale

    @property
    def shape(self) -> torch.Size:
        return self.values.shape


# Below this size the pass saved is worth less than the small operations of the statistics and the
# fold, about 0.1 ms a norm, so small frames would get slower. (A 512 px frame's residual
# activations are exactly 4 MiB in bf16; on a 2-core Xeon with AMX it ran fastest with them in.)
MIN_BYTES = 4 << 20


def applies(y: Tensor, weight: Tensor | None) -> bool:
    """Whether the norm of scale `weight` (C,) and the ReLU after it may be deferred for `y`."""
    return (
        weight is not None
        and weight.dim() == 1
        and low_memory_ops.applies(y)
        and y.shape[0] == 1
        and y.numel() * y.element_size() >= MIN_BYTES
        and bool((weight > 0).all())
    )


def _scale_shift(y: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per channel, the s and t of instance_norm(y) = s * y + t, from y's statistics (y: one image)."""
    channels = y.shape[1]
    # Fresh running statistics each call: with momentum 0 they come back unchanged. In fp32 for a
    # bf16 or fp16 y, they also make the kernel return its statistics in fp32.
    dtype = torch.promote_types(y.dtype, torch.float32)
    running = y.new_zeros(channels, dtype=dtype), y.new_ones(channels, dtype=dtype)
    mean, var = torch.batch_norm_update_stats(y, *running, 0.0)
    scale = weight.to(dtype) * torch.rsqrt(var + eps)
    return scale, bias.to(dtype) - mean * scale


def normalise_rectify(y: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Deferred:
    """relu(instance_norm(y)) as a `Deferred` whose values are `y`, clamped in place."""
    scale, shift = _scale_shift(y, weight, bias, eps)
    threshold = -shift / scale
    # A threshold above the largest value y's dtype holds (fp16: 65504) is above every pixel: the
    # ReLU leaves that channel at zero, so its scale and shift are zero and the clamp stays finite.
    largest = torch.finfo(y.dtype).max
    dead = threshold > largest
    scale, shift = scale.masked_fill(dead, 0), shift.masked_fill(dead, 0)
    y.clamp_min_(threshold.clamp(-largest, largest).to(y.dtype).view(1, -1, 1, 1))
    return Deferred(y, scale, shift)


def fold(weight: Tensor, bias: Tensor | None, x: Deferred) -> tuple[Tensor, Tensor]:
    """The weights and bias of a convolution that reads `x.values` and computes what it would on `x`.

    Summed in the deferred statistics' precision and rounded once to the weights' dtype.
    """
    w = weight.to(x.scale.dtype)
    folded_bias = (w * x.shift.view(1, -1, 1, 1)).sum((1, 2, 3))
    if bias is not None:
        folded_bias += bias.to(x.scale.dtype)
    return (w * x.scale.view(1, -1, 1, 1)).to(weight.dtype), folded_bias.to(weight.dtype)


def convolution_input(
    x: Tensor | Deferred, weight: Tensor, bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """What a convolution of `weight` and `bias` computes on: `x` itself, or a deferred `x`'s values
    with the weights and bias folded (`fold`)."""
    if isinstance(x, Deferred):
        return (x.values, *fold(weight, bias, x))
    return x, weight, bias
