"""Faster, equivalent forms of the layers of the transformation network and of VGG.

Each computes what the plain layer computes, gradients included (tests/test_fast_ops.py checks
both in float64; max pooling's gradient differs only at exact ties). `TransformerNet.use_fast_ops`
and `VGG19Features.use_fast_ops` switch them on, for inference's fast path and training's speed
options; export and the fp32 reference keep the plain layers. Figures are from a 2-core Intel Xeon
with AMX, bf16, channels-last.

- `instance_norm`: PyTorch's CPU instance norm, and Inductor's decomposition of it, reduce a
  channels-last tensor one group of channels at a time (Welford updates, several passes over
  memory). Batch norm has a one-pass channels-last kernel, and an image's instance norm is the
  batch norm of a batch of one: 5.5 against 48 ms for 128 channels at 270x480 (forward). It is a
  custom operator so that `torch.compile` calls that kernel in training instead of decomposing
  it; compiled inference uses sums that Inductor fuses with the layers around them.
- `upsample_conv`: nearest x2 upsampling, reflection padding and a 3x3 convolution equal one 2x2
  convolution of the small image (replicate-padded) into four phase outputs, interleaved (the
  sub-pixel convolution of Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution
  Using an Efficient Sub-Pixel Convolutional Neural Network"): the 4x larger upsampled tensor
  is never built, in the forward or the backward pass, and each output pixel costs 4 of the 3x3
  convolution's 9 multiply-adds per input channel (the upsampled rows and columns repeat). CPU
  inference runs the same kernels as one stride-2 transposed convolution, which writes the
  interleaved output itself.
- `reflection_pad` and `max_pool2x2`: forms whose backward passes Inductor compiles into plain
  vectorised loops (training).
- `relu`: in compiled training on CPUs, a ReLU whose backward reads its output, not a bool mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def layout_of(x: Tensor) -> torch.memory_format:
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def _batch_norm_per_image(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(N, C, H, W) -> (normalised, mean (N, C), 1/std (N, C)), one batch-norm call per image."""
    if len(x) == 1:
        out, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, eps)
        return out, mean.unsqueeze(0), invstd.unsqueeze(0)
    out = torch.empty_like(x)
    means, invstds = [], []
    for i, image in enumerate(x.split(1)):
        normalised, mean, invstd = torch.native_batch_norm(image, weight, bias, None, None, True, 0.0, eps)
        out[i : i + 1] = normalised
        means.append(mean)
        invstds.append(invstd)
    return out, torch.stack(means), torch.stack(invstds)


@torch.library.custom_op("stylenet::instance_norm", mutates_args=())
def _instance_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    return _batch_norm_per_image(x, weight, bias, eps)


@_instance_norm.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    stats = x.new_empty((x.shape[0], x.shape[1]), dtype=weight.dtype)
    return torch.empty_like(x), stats, stats.clone()


@torch.library.custom_op("stylenet::instance_norm_backward", mutates_args=())
def _instance_norm_backward(
    grad: Tensor, x: Tensor, weight: Tensor, mean: Tensor, invstd: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    grad = grad.contiguous(memory_format=layout_of(x))  # the kernel is one-pass only when both layouts agree
    grad_x = torch.empty_like(x)
    grad_weight = torch.zeros_like(weight)
    grad_bias = torch.zeros_like(weight)
    for i in range(len(x)):
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad[i : i + 1], x[i : i + 1], weight, None, None, mean[i], invstd[i], True, eps, [True, True, True]
        )
        grad_x[i : i + 1] = gx
        grad_weight += gw
        grad_bias += gb
    return grad_x, grad_weight, grad_bias


@_instance_norm_backward.register_fake
def _(grad: Tensor, x: Tensor, weight: Tensor, mean: Tensor, invstd: Tensor, eps: float):
    return torch.empty_like(x), torch.empty_like(weight), torch.empty_like(weight)


def _setup_context(ctx, inputs, output) -> None:
    x, weight, _, eps = inputs
    _, mean, invstd = output
    ctx.save_for_backward(x, weight, mean, invstd)
    ctx.eps = eps


def _backward(ctx, grad: Tensor, _grad_mean, _grad_invstd):
    x, weight, mean, invstd = ctx.saved_tensors
    grad_x, grad_weight, grad_bias = _instance_norm_backward(grad, x, weight, mean, invstd, ctx.eps)
    return grad_x, grad_weight, grad_bias, None


_instance_norm.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("stylenet::relu", mutates_args=())
def _relu(x: Tensor) -> Tensor:
    return torch.relu(x)


@_relu.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("stylenet::relu_backward", mutates_args=())
def _relu_backward(grad: Tensor, output: Tensor) -> Tensor:
    grad = grad.contiguous(memory_format=layout_of(output))  # the result takes the output's layout
    return torch.ops.aten.threshold_backward(grad, output, 0)


@_relu_backward.register_fake
def _(grad: Tensor, output: Tensor) -> Tensor:
    return torch.empty_like(output)


def _relu_setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(output)


def _relu_grad(ctx, grad: Tensor) -> Tensor:
    (output,) = ctx.saved_tensors
    return _relu_backward(grad, output)


_relu.register_autograd(_relu_grad, setup_context=_relu_setup_context)


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """`F.relu(x, inplace)`; in compiled training on a CPU, as an operator Inductor does not take apart.

    Taken apart, the ReLU of the transformation network (whose output only the next layer's
    padding reads) leaves its backward a bool mask `x <= 0`, and Inductor's CPU kernels (torch
    2.14) store bool vectors slowly: on a 2-core Intel Xeon with AMX, a ReLU of 4x32x256x256 in
    bf16 took 1.2 ms and the same with its mask 57 ms, and the kernels holding such masks took
    290 of a 256 px training step's 900 ms (scripts/relu_mask_speed.py, docs/performance.md). As
    an operator the ReLU keeps its output for the backward instead (one more bf16 tensor, no mask).
    """
    if x.device.type == "cpu" and torch.is_grad_enabled() and torch.compiler.is_compiling():
        return _relu(x)
    return F.relu(x, inplace=inplace)


# Rows per partial sum in `_instance_norm_from_sums`: short enough for a plain loop, long enough to stream.
_ROWS_PER_PARTIAL_SUM = 256


def _instance_norm_from_sums(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Instance norm written for Inductor: per-channel sums in two stages, then one fused pass.

    Inductor turns this into a streaming reduction over pixels (all channels of a pixel at once)
    and a single normalise-and-write loop that also takes in the ReLU and padding that follow;
    from the stock operator it makes Welford loops, one pass per group of channels.
    """
    n, c, h, w = x.shape
    accumulate = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 sums in fp32; fp64 stays fp64
    if torch.compiler.is_exporting():
        # One graph for every size (aot_package): the split below branches on whether its head or tail
        # is empty, which export would fix into the graph; Inductor splits this reduction by itself.
        total = x.sum((2, 3), dtype=accumulate)  # (N, C)
        squares = x.to(accumulate).square().sum((2, 3))
    else:
        pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view for channels-last x
        rows = h * w // _ROWS_PER_PARTIAL_SUM * _ROWS_PER_PARTIAL_SUM
        head = pixels[:, :rows].reshape(n, -1, _ROWS_PER_PARTIAL_SUM, c).to(accumulate)
        tail = pixels[:, rows:].to(accumulate)
        total = head.sum(2).sum(1) + tail.sum(1)  # (N, C)
        squares = (head * head).sum(2).sum(1) + (tail * tail).sum(1)
    # Multiplied, not divided: Inductor computes the mean again inside the per-pixel loop, where a
    # vector division costs several multiplications (docs/performance.md, Fused loops).
    per_pixel = 1.0 / (h * w)
    mean = total * per_pixel
    var = (squares * per_pixel - mean * mean).clamp_min(0)
    scale = torch.rsqrt(var + eps) * weight.to(accumulate)  # (N, C)
    shift = bias.to(accumulate) - mean * scale
    # One small buffer for both, computed once per channel: left apart, Inductor recomputed the
    # shift from the sums in the per-pixel loop, for every vector of channels of every pixel.
    scale, shift = torch.stack((scale, shift))
    return x * scale.to(x.dtype).view(n, c, 1, 1) + shift.to(x.dtype).view(n, c, 1, 1)


def instance_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """`F.instance_norm(x, weight=weight, bias=bias, eps=eps)`, affine, for (N, C, H, W) `x`.

    Eager, and wherever gradients are needed: the batch-norm operator. Under torch.compile
    without gradients (compiled inference): sums that Inductor fuses with their neighbours.
    """
    if not torch.is_grad_enabled():
        if torch.compiler.is_compiling():
            return _instance_norm_from_sums(x, weight, bias, eps)
        # Not through the custom operator: its first call imports torch._dynamo (over a second).
        return _batch_norm_per_image(x, weight, bias, eps)[0]
    return _instance_norm(x, weight, bias, eps)[0]


# Row p of _TAPS[a] lists which of the 3x3 kernel's rows (or columns) fall on the p-th of the two
# small-image rows that output phase a reads: nearest x2 upsampling repeats every row twice.
_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def phase_weight(weight: Tensor) -> Tensor:
    """(Co, Ci, 3, 3) -> (4 Co, Ci, 2, 2): the 2x2 kernel of each of the four output phases.

    Output channels are phase-major (phase (a, b) is channels (2a + b) Co to (2a + b + 1) Co), so
    that in channels-last memory each output pixel's channels are one contiguous run. Recomputed
    at every call, at a cost that does not grow with the image: training needs its gradient, and
    compiled inference freezes the weights, which folds it into a constant.
    """
    co, ci = weight.shape[:2]
    # Summed in at least fp32 and rounded once, so the bf16 path rounds each phase weight only once.
    dtype = torch.promote_types(weight.dtype, torch.float32)
    taps = _TAPS.to(weight.device, dtype)
    phases = torch.einsum("apy,bqx,ocyx->abocpq", taps, taps, weight.to(dtype))  # (2, 2, Co, Ci, 2, 2)
    return phases.reshape(4 * co, ci, 2, 2).to(weight.dtype)


# Row k of the 4x4 kernel of the same upsampling as a stride-2 transposed convolution: which of the
# 3x3 kernel's rows (or columns) it sums. Output row 2i + a reads padded rows i + a and i + a + 1
# (as the phases do) through rows 3 - a and 1 - a of the 4x4 kernel: row k = 3 - a - 2p is _TAPS[a][p].
_TRANSPOSED_TAPS = torch.stack([_TAPS[1, 1], _TAPS[0, 1], _TAPS[1, 0], _TAPS[0, 0]])


def by_transposed_convolution(x: Tensor) -> bool:
    """Whether `upsample_conv` runs as a transposed convolution rather than as four phases: in CPU inference.

    The same multiply-adds, but oneDNN writes the interleaved output itself: no phase buffer and no
    interleaving copy, which Inductor compiled into slow indexed loops. Training keeps the phases:
    oneDNN's backward of the transposed form made a compiled training step slower (both measured by
    `scripts/upsampling_speed.py`, docs/performance.md). GPUs keep the form measured there.
    """
    return x.device.type == "cpu" and not torch.is_grad_enabled()


def transposed_weight(weight: Tensor) -> Tensor:
    """(Co, Ci, 3, 3) -> (Ci, Co, 4, 4): the upsampling and 3x3 convolution as a stride-2 transposed
    convolution of the replicate-padded small image, with padding 3 (exactly 2h x 2w outputs)."""
    dtype = torch.promote_types(weight.dtype, torch.float32)  # summed in fp32 at least, rounded once
    taps = _TRANSPOSED_TAPS.to(weight.device, dtype)
    return torch.einsum("ky,lx,ocyx->cokl", taps, taps, weight.to(dtype)).to(weight.dtype)


def phase_bias(bias: Tensor | None) -> Tensor | None:
    """(Co,) -> (4 Co,): each phase's outputs take the convolution's bias."""
    return None if bias is None else bias.repeat(4)


def _interleave_phases(phases: Tensor, channels_last: bool) -> Tensor:
    """(B, 4 Co, h + 1, w + 1) 2x2-convolution outputs, phase-major -> (B, Co, 2h, 2w), one copy.

    Phase (a, b) reads the replicate-padded small image's rows i + a, i + a + 1 and columns j + b,
    j + b + 1, so its h x w outputs start at row a and column b: pixel (2i + a, 2j + b) of the
    result is its output (i + a, j + b).
    """
    if torch.compiler.is_compiling():
        return interleave_by_cropping(phases)
    return _interleave(phase_views(phases), channels_last)


def phase_views(phases: Tensor) -> Tensor:
    """(B, 4 Co, h + 1, w + 1) -> (B, 2, 2, Co, h, w): phase (a, b) from row a and column b, a view.

    The offset, one row (column) more per phase step, is a stride, so that slicing the phases adds
    no pass over memory to the interleave's one copy (slices stacked would be a second one).
    Backward, the gradient is one zeroed buffer of the convolution's output size with the
    incoming gradient copied in once.
    """
    n, c4, rows, cols = phases.shape
    co, (sn, sc, sh, sw) = c4 // 4, phases.stride()
    return phases.as_strided((n, 2, 2, co, rows - 1, cols - 1), (sn, 2 * co * sc + sh, co * sc + sw, sc, sh, sw))


def _interleave(phases: Tensor, channels_last: bool) -> Tensor:
    """(B, 2, 2, Co, h, w) phases -> (B, Co, 2h, 2w): pixel (2i + a, 2j + b) from phase (a, b), one copy."""
    n, _, _, co, h, w = phases.shape
    if channels_last:  # whole pixels, each Co values in a row, land in channels-last order
        pixels = phases.permute(0, 4, 1, 5, 2, 3).reshape(n, 2 * h, 2 * w, co)
        return pixels.permute(0, 3, 1, 2)
    return phases.permute(0, 3, 4, 1, 5, 2).reshape(n, co, 2 * h, 2 * w)


def interleave_by_cropping(phases: Tensor) -> Tensor:
    """`_interleave_phases` for compiled code: whole phase outputs interleaved, then cropped.

    Strides read while tracing need not be those of the buffer Inductor makes (with frozen weights,
    `phase_views` of an NCHW convolution read wrong values), so this form uses no strides.
    Interleaved in reverse order, (h + 1) x (w + 1) outputs of phase (1 - a, 1 - b) in slot
    (a, b), the wanted pixels are one block, one row and column in: Inductor computes it as one
    indexed copy. Eager, it would be two copies (the flip, then the interleave).
    """
    n, c4, rows, cols = phases.shape
    grouped = phases.unflatten(1, (2, 2, c4 // 4)).flip(1, 2)  # (B, 2, 2, Co, h + 1, w + 1)
    interleaved = grouped.permute(0, 3, 4, 1, 5, 2).reshape(n, c4 // 4, 2 * rows, 2 * cols)
    return interleaved[..., 1:-1, 1:-1]


def _reference_rows(x: Tensor, size: tuple[int, int], weight: Tensor, bias: Tensor | None) -> Tensor:
    """The last output row for an odd output height, computed the plain way on a 3-row strip.

    At an odd size the bottom reflection mirrors an unrepeated row, which no phase kernel covers.
    """
    h = x.shape[-2]
    strip = x[..., [h - 2, h - 1, h - 2], :]  # the upsampled rows H-2, H-1 and the mirror of H-2
    strip = F.pad(F.interpolate(strip, size=(3, size[1]), mode="nearest"), (1, 1, 0, 0), mode="reflect")
    return F.conv2d(strip, weight, bias)  # (B, Co, 1, W)


def reflection_pad(x: Tensor, pad: int) -> Tensor:
    """`F.pad(x, (pad,) * 4, mode="reflect")`; in compiled training, from concatenations of flipped edges.

    Under torch.compile the stock operator's backward (and its forward, which keeps a mask for
    the fused ReLU's backward) ran as per-element index arithmetic: about a fifth of a 256 px bf16
    training step on that Xeon. Concatenations differentiate into plain slices and sums.
    Eager, the stock kernels are faster (a 128 px bf16 training step: 289 against 415 ms with
    this and `max_pool2x2`); without gradients the stock forward compiles faster.
    """
    if pad == 0 or not (torch.is_grad_enabled() and torch.compiler.is_compiling()):
        return F.pad(x, (pad,) * 4, mode="reflect")
    return reflection_pad_by_concatenation(x, pad)


def reflection_pad_by_concatenation(x: Tensor, pad: int) -> Tensor:
    top, bottom = x[..., 1 : pad + 1, :].flip(-2), x[..., -pad - 1 : -1, :].flip(-2)
    x = torch.cat([top, x, bottom], dim=-2)
    left, right = x[..., 1 : pad + 1].flip(-1), x[..., -pad - 1 : -1].flip(-1)
    return torch.cat([left, x, right], dim=-1)


def _replicate_pad(x: Tensor) -> Tensor:
    """`F.pad(x, (1, 1, 1, 1), mode="replicate")` from concatenations: Inductor (torch 2.14) mislays the
    strides of replication_pad2d's backward for channels-last tensors."""
    x = torch.cat([x[..., :1, :], x, x[..., -1:, :]], dim=-2)
    return torch.cat([x[..., :1], x, x[..., -1:]], dim=-1)


def upsample_conv(x: Tensor, size: tuple[int, int], weight: Tensor, bias: Tensor | None) -> Tensor:
    """`conv2d(reflection_pad(interpolate(x, size, "nearest"), 1), weight, bias)` for 3x3 `weight`.

    `x` is (B, Ci, h, w) and `size` (H, W) with H in {2h - 1, 2h} and W in {2w - 1, 2w}, as the
    decoder's sizes always are.
    """
    (h, w), (height, width) = x.shape[-2:], size
    if height not in (2 * h - 1, 2 * h) or width not in (2 * w - 1, 2 * w) or min(h, w) < 2:
        raise ValueError(f"upsample_conv: cannot upsample {h}x{w} to {height}x{width} by two")
    layout = layout_of(x)
    padded = _replicate_pad(x)  # (B, Ci, h + 2, w + 2)
    if by_transposed_convolution(x):
        y = F.conv_transpose2d(padded, transposed_weight(weight), bias, stride=2, padding=3)[..., :height, :width]
    else:
        phases = F.conv2d(padded, phase_weight(weight), phase_bias(bias))  # (B, 4 Co, h + 1, w + 1)
        y = _interleave_phases(phases, layout == torch.channels_last)[..., :height, :width]  # (B, Co, H, W)
    if height % 2:
        y = torch.cat([y[..., :-1, :], _reference_rows(x, size, weight, bias)], dim=-2)
    if width % 2:
        last = _reference_rows(x.transpose(-1, -2), (width, height), weight.transpose(-1, -2), bias)
        y = torch.cat([y[..., :-1], last.transpose(-1, -2)], dim=-1)
    return y.contiguous(memory_format=layout)  # a no-op at even sizes


def max_pool2x2(x: Tensor) -> Tensor:
    """`F.max_pool2d(x, 2)`; in compiled code, as the maximum of four strided views.

    Under torch.compile the stock operator's forward (with indices) and backward took 145 ms for a
    batch of four 64-channel 256 px maps in bf16 channels-last on that Xeon; this takes 22.
    At exact ties the gradient is shared by the tied maxima instead of going to the first one:
    both are gradients of the same loss (the loss value is the same either way). Eager, the stock
    operator is faster, and is used.
    """
    if not torch.compiler.is_compiling():
        return F.max_pool2d(x, 2)
    return max_pool_by_views(x)


def max_pool_by_views(x: Tensor) -> Tensor:
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # as max_pool2d: an odd last row is dropped
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    return torch.maximum(top, bottom)
