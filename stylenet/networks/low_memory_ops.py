"""Forms of the fast layers for eager inference that never hold a second full-size activation.

At 1920x1080 every 32-channel activation of the transformation network is 133 MB in bf16. The
plain forms hold two or three of them at once: a normalised copy beside its input, a padded copy
beside the tensor it pads, the whole four-phase output of the sub-pixel upsampling beside its
interleaved result, and a residual block's sum beside its two terms. These compute the same
values (tests/test_low_memory_ops.py) while holding at most the layer's input and output plus a
strip a few rows high. They are for inference only (no gradients) and eager only: compiled
inference leaves buffers to Inductor's memory planning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.networks.blocked_conv import blocked_conv
from stylenet.networks.fast_ops import (
    by_transposed_convolution,
    layout_of,
    phase_bias,
    phase_views,
    phase_weight,
    transposed_weight,
)

# The sub-pixel upsampling writes its output in strips of about this many bytes of phase outputs.
# Strips that stay in cache ran faster than the whole-image form at every size measured, 512 px
# included, even with the one-row overlap between strips computed twice.
STRIP_BYTES = 4 << 20
# Below this input size a padded copy is small beside the peak, and padding then convolving was
# as fast or faster than the border strips' extra calls (the residual blocks of a 512 px frame);
# from here on the copy costs more than the strips, and from 32 MiB (glibc's largest mmap
# threshold) each copy is also a fresh mapping that pays page faults on first touch.
LARGE_BYTES = 8 << 20


def applies(x: Tensor) -> bool:
    """Whether these forms may run: eager, without gradients, on an (N, C, H, W) activation."""
    return x.dim() == 4 and not torch.is_grad_enabled() and not torch.compiler.is_compiling()


def is_large(x: Tensor) -> bool:
    """Whether `x` is large enough for `padded_conv` to pay (see `LARGE_BYTES`)."""
    return applies(x) and x.numel() * x.element_size() >= LARGE_BYTES


def instance_norm_(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Affine instance norm of `x` written into `x` itself, one batch-norm call per image.

    For a layer's fresh output that nothing else reads. The batch-norm kernel measures its
    statistics in a first pass and then normalises element by element, so its output may alias
    its input (the test compares it with the out-of-place operator, bit for bit). Only where
    `x` is dense: into a strided view (the cropped output of a transposed convolution) the
    kernel writes wrong values, so such an `x` is normalised out of place and copied back.
    """
    stats_dtype = weight.dtype
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        return x.copy_(F.instance_norm(x, weight=weight, bias=bias, eps=eps))
    for image in x.split(1):
        mean = image.new_empty(image.shape[1], dtype=stats_dtype)
        invstd = torch.empty_like(mean)
        torch.ops.aten.native_batch_norm.out(
            image, weight, bias, None, None, True, 0.0, eps, out=image, save_mean=mean, save_invstd=invstd
        )
    return x


def residual_sum(x: Tensor, y: Tensor) -> Tensor:
    """`x + y` for a residual block whose fresh output `y` nothing else reads: in place, in `y`.

    Out of place, the sum would be a fourth activation beside the block's input, middle and output.
    """
    return y.add_(x) if applies(y) else x + y


def conv2d_into(
    out: Tensor | None, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int
) -> Tensor:
    """`F.conv2d(x, weight, bias, stride, padding)`, written into `out` where one is given.

    PyTorch's convolution has no true out= form (`aten.convolution.out` computes into a fresh
    tensor and copies); oneDNN's convolution with an addition fused in writes into the tensor it
    adds to, so `out` is zeroed and added to, in memory the caller kept (`frame_buffers`). The same
    values: bit for bit in bf16 (tests); in fp32 PyTorch's convolution picks another kernel for
    some small single-image shapes, and the two differ by rounding. Elsewhere (no oneDNN, another
    device) the plain call.
    """
    if out is None or not _conv_into_available(x):
        return F.conv2d(x, weight, bias, stride, padding)
    out.zero_()
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        out, x, weight, bias, [padding] * 2, [stride] * 2, [1, 1], 1, "add", None, None, [], None
    )


def _conv_into_available(x: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")
    )


def padded_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int,
    pad: int,
    mode: str,
    blocked: bool = False,
    out: Tensor | None = None,
) -> Tensor:
    """`F.conv2d(F.pad(x, (pad,) * 4, mode=mode), weight, bias, stride)` without the padded copy of `x`.

    The convolution pads with zeros on its own (oneDNN does it inside the kernel); only the output
    rows and columns whose window reaches into the padding differ, and those are recomputed from
    strips of `x` padded the right way, a kernel's height or width each. `blocked`: the main
    convolution (stride 1) by output blocks (`blocked_conv`), for layers with few output channels.
    `out`: a kept buffer of the output's shape to write into (`conv2d_into`; not with `blocked`).
    """
    h, w = x.shape[-2:]
    k = weight.shape[-1]
    top = -(-pad // stride)  # output rows whose window starts above the image
    bottom = (h - k + pad) // stride + 1  # the first output row whose window ends below it
    left, right = top, (w - k + pad) // stride + 1
    if pad == 0 or bottom <= top or right <= left:  # too small for separate borders: the plain way
        return conv2d_into(out, F.pad(x, (pad,) * 4, mode=mode), weight, bias, stride, 0)
    out = blocked_conv(x, weight, bias, pad) if blocked else conv2d_into(out, x, weight, bias, stride, pad)
    first_row, first_col = bottom * stride - pad, right * stride - pad  # where the far borders' windows start
    edge_rows, edge_cols = (top - 1) * stride + k - pad, (left - 1) * stride + k - pad  # what the near ones read

    def border(strip: Tensor, padding: tuple[int, int, int, int]) -> Tensor:
        return F.conv2d(F.pad(strip, padding, mode=mode), weight, bias, stride)

    # Each strip reaches one window further into the image than its border needs, and that
    # output is dropped: oneDNN's AMX kernels for bf16 (PyTorch 2.14) return garbage, NaN
    # included, for a strided convolution whose output is a single column, which the left
    # border of a stride-2 layer would otherwise be.
    out[..., :top, :] = border(x[..., : edge_rows + stride, :], (pad, pad, pad, 0))[..., :top, :]
    out[..., :, :left] = border(x[..., : edge_cols + stride], (pad, 0, pad, pad))[..., :left]
    if bottom < out.shape[-2]:  # with a stride, the last window may end inside the image
        out[..., bottom:, :] = border(x[..., first_row - stride :, :], (pad, pad, 0, pad))[..., 1:, :]
    if right < out.shape[-1]:
        out[..., :, right:] = border(x[..., first_col - stride :], (0, pad, pad, pad))[..., 1:]
    return out


def upsample_conv_by_strips(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None = None) -> Tensor:
    """`fast_ops.upsample_conv` to exactly twice the size of `x`, written into its output strip by strip.

    Each strip convolves a few rows of the replicate-padded input and writes the result straight to
    its rows of the output: as a transposed convolution whose output rows are already interleaved
    (CPUs), or as the four phase outputs copied to their interleaved places, so the whole phase
    output (as large as the result) never exists. `out`: a kept buffer of the output's shape and
    `x`'s layout to write into.
    """
    n, _, h, w = x.shape
    co = weight.shape[0]
    transposed = by_transposed_convolution(x)
    kernels = transposed_weight(weight) if transposed else phase_weight(weight)
    biases = bias if transposed else phase_bias(bias)
    if out is None:
        out = torch.empty((n, co, 2 * h, 2 * w), dtype=x.dtype, device=x.device, memory_format=layout_of(x))
    rows = max(1, STRIP_BYTES // (4 * co * (w + 1) * x.element_size() * n))
    for start in range(0, h, rows):
        stop = min(start + rows, h)
        # Padded rows start .. stop + 1 are input rows start - 1 .. stop, the edge rows repeated.
        pieces = [x[..., max(start - 1, 0) : stop + 1, :]]
        if start == 0:
            pieces.insert(0, x[..., :1, :])
        if stop == h:
            pieces.append(x[..., -1:, :])
        strip = torch.cat(pieces, dim=-2)
        strip = torch.cat([strip[..., :1], strip, strip[..., -1:]], dim=-1)
        if transposed:  # output rows 2 start .. 2 stop, in place
            out[..., 2 * start : 2 * stop, :].copy_(F.conv_transpose2d(strip, kernels, biases, stride=2, padding=3))
            continue
        phases = F.conv2d(strip, kernels, biases)  # (N, 4 Co, stop - start + 1, w + 1)
        # Output pixel (2i + a, 2j + b), as (N, a, b, Co, i, j) to match the phase views.
        target = out[..., 2 * start : 2 * stop, :].unflatten(-1, (w, 2)).unflatten(-3, (stop - start, 2))
        target.permute(0, 3, 5, 1, 2, 4).copy_(phase_views(phases))
    return out
