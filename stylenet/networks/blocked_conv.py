"""A convolution with few output channels, computed as one with many: output blocks as channels.

The network's last layer maps 32 channels to 3 with a 9x9 kernel. oneDNN vectorises over output
channels, so three of them leave most of each vector register empty, and that layer took a large
share of a frame for a small share of its arithmetic (docs/performance.md, Where the time went).
Here each s x s block of output pixels becomes s*s*C output channels of one convolution with
stride s and an (k + s - 1)-wide kernel (the original kernel at each of the block's offsets, zero
elsewhere), and a pixel shuffle puts the pixels back in place (the inverse of Shi et al. 2016's
sub-pixel layout; in compiled inference, `pixels_from_blocks`). The zeros cost
(k + s - 1)^2 / k^2 more multiply-adds, 1.8x at s = 4, and the layer still ran three times
faster. Rows and columns past the last whole block are computed the plain way on strips a
kernel high.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.networks.fast_ops import layout_of

# Output channels below which blocking pays: oneDNN's bf16 and fp32 kernels fill 16 lanes.
FEW_CHANNELS = 16
BLOCK = 4
# Input channels that blocking needs a multiple of. oneDNN's AMX kernels for bf16 (PyTorch 2.14)
# return garbage for this stride-4 convolution at most sizes with 8, 16 or 24 input channels (the
# output layer of networks narrower than the default), and right values at every size tried with
# 32, 48 and 64 (docs/performance.md, On an Intel Xeon with AMX).
CHANNEL_MULTIPLE = 32


def applies(in_channels: int, out_channels: int, stride: int) -> bool:
    """Whether a convolution is computed by output blocks: few output channels, stride 1, safe inputs."""
    return out_channels < FEW_CHANNELS and stride == 1 and in_channels % CHANNEL_MULTIPLE == 0


def block_weight(weight: Tensor, block: int, pixel_major: bool = False) -> Tensor:
    """(Co, Ci, k, k) -> (Co * block^2, Ci, k + block - 1, k + block - 1), channel (c, p, q) for pixel (p, q).

    `pixel_major`: channel (p, q, c) instead, the order of a channels-last image's memory."""
    co, ci, k, _ = weight.shape
    size = k + block - 1
    rows = []
    for p in range(block):  # the kernel moved down by p and right by q inside the larger window
        for q in range(block):
            rows.append(F.pad(weight, (q, size - k - q, p, size - k - p)))
    return torch.stack(rows, dim=0 if pixel_major else 1).reshape(co * block * block, ci, size, size)


def _in_compiled_inference() -> bool:
    # Not in training (the custom operator below has no backward) nor in exported files (they would
    # need it wherever they are loaded).
    return torch.compiler.is_compiling() and not torch.compiler.is_exporting() and not torch.is_grad_enabled()


@torch.library.custom_op("stylenet::pixels_from_blocks", mutates_args=())
def pixels_from_blocks(blocks: Tensor, block: int) -> Tensor:
    """(N, block^2 * C, h, w) output blocks, channel (p, q, c) -> the (N, C, h * block, w * block) image, channels-last.

    For compiled graphs. Inductor compiles a pixel shuffle into a loop of single elements that
    recomputes each one's address with integer divisions (docs/performance.md, Fused loops); in
    this channel order each image row is whole runs of block * C values of one block row, which
    one strided copy moves.
    """
    n, channels, h, w = blocks.shape
    c = channels // (block * block)
    shape = (n, c, h * block, w * block)
    out = torch.empty(shape, dtype=blocks.dtype, device=blocks.device, memory_format=torch.channels_last)
    rows = blocks.permute(0, 2, 3, 1).reshape(n, h, w, block, block * c).transpose(2, 3)
    out.permute(0, 2, 3, 1).view(n, h, block, w, block * c).copy_(rows)
    return out


@pixels_from_blocks.register_fake
def _(blocks: Tensor, block: int) -> Tensor:
    n, channels, h, w = blocks.shape
    shape = (n, channels // (block * block), h * block, w * block)
    return blocks.new_empty(shape).contiguous(memory_format=torch.channels_last)


def blocked_conv(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int, block: int = BLOCK) -> Tensor:
    """`F.conv2d(x, weight, bias, padding=padding)` (stride 1, square kernel), computed by output blocks."""
    h, w = x.shape[-2:]
    k = weight.shape[-1]
    height, width = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    rows, cols = height // block * block, width // block * block
    if min(rows, cols) < max(block, padding):  # too small to have whole blocks and plain strips
        return F.conv2d(x, weight, bias, padding=padding)
    # Compiled inference: blocks in image-memory order, then one strided copy (`pixels_from_blocks`).
    pixel_major = _in_compiled_inference() and layout_of(x) == torch.channels_last
    biases = None
    if bias is not None:  # one per block channel
        biases = bias.repeat(block * block) if pixel_major else bias.repeat_interleave(block * block)
    blocks = F.conv2d(x, block_weight(weight, block, pixel_major), biases, stride=block, padding=padding)
    out = pixels_from_blocks(blocks, block) if pixel_major else F.pixel_shuffle(blocks, block)
    if (rows, cols) == (height, width):
        return out
    whole, shape = out, (x.shape[0], weight.shape[0], height, width)
    out = torch.empty(shape, dtype=whole.dtype, device=x.device, memory_format=layout_of(whole))
    out[..., :rows, :cols] = whole
    if rows < height:  # output row r reads input rows r - padding .. r - padding + k - 1
        strip = F.pad(x[..., rows - padding :, :], (padding, padding, 0, padding))
        out[..., rows:, :] = F.conv2d(strip, weight, bias)
    if cols < width:
        strip = F.pad(x[..., cols - padding :], (0, padding, padding, padding))
        out[..., :, cols:] = F.conv2d(strip, weight, bias)
    return out
