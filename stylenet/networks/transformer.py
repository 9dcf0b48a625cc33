"""The image transformation network of Johnson, Alahi & Fei-Fei 2016.

"Perceptual Losses for Real-Time Style Transfer and Super-Resolution" (arXiv 1603.08155):
c9s1-32, d64, d128, R128 x5, u64, u32, c9s1-3, with instance norm after every convolution
but the last (Ulyanov et al. 2016, arXiv 1607.08022) and reflection padding everywhere.

With `downsample="blur"` each stride-2 convolution low-passes its input first (`antialias`);
tried for steadier video, it did not make trained networks steadier (docs/video.md).

With `num_styles` > 1 the instance norms become conditional (`ConditionalInstanceNorm`): one
network holds several styles, and `forward(x, style)` takes the weight of each.

This module is self-contained on purpose: inference and export import it without any
training code.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylenet.networks import antialias, blocked_conv, deferred_norm, fast_ops, low_memory_ops
from stylenet.networks.frame_buffers import FrameBuffers, carve


@dataclass(frozen=True)
class TransformerConfig:
    """Everything needed to rebuild a `TransformerNet` (`TransformerNet(**config.to_dict())`)."""

    width: float = 1.0  # channel multiplier: 1.0 is Johnson's 32-64-128
    num_residual_blocks: int = 5
    upsample: str = "nearest"  # "nearest" or "bilinear" (resize then conv), or "transposed"
    norm: str = "instance"  # "instance", "batch" or "none"
    num_styles: int = 1  # > 1: conditional instance norm, one row of scale and shift per style
    downsample: str = "strided"  # "strided" (Johnson's) or "blur": low-pass before each stride-2 convolution

    def to_dict(self) -> dict:
        return asdict(self)


class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance norm that can run through `fast_ops.instance_norm` (same parameters and result).

    Like `nn.ReLU(inplace=True)`, with the fast layers on and no gradients (eager inference) it
    normalises its input in place: the network only ever hands it a layer's fresh output.
    """

    fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast and x.dim() == 4:
            return _instance_norm(x, self.weight, self.bias, self.eps, fast=True)
        return super().forward(x)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are a table with one row per style (in place as `InstanceNorm`).

    Dumoulin, Shlens & Kudlur 2017, "A Learned Representation for Artistic Style" (arXiv
    1610.07629): everything else in the network is shared. `style` weighs the rows: a one-hot
    vector picks a style, any convex combination blends them (scale and shift mix linearly).
    """

    fast = False

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_styles, channels))  # (S, C)
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))  # (S, C)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """`style`: (S,) weights for the whole batch, or (B, S) one set per image."""
        style = style.to(self.weight.dtype)
        weight, bias = style @ self.weight, style @ self.bias  # (C,) or (B, C)
        if weight.dim() == 1:  # one style or blend for all: exactly a plain instance norm
            return _instance_norm(x, weight, bias, self.eps, self.fast)
        ones = torch.ones_like(weight[0])
        normalised = _instance_norm(x, ones, torch.zeros_like(ones), self.eps, self.fast)
        return normalised * weight[:, :, None, None] + bias[:, :, None, None]


def _instance_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, fast: bool) -> torch.Tensor:
    if fast and low_memory_ops.applies(x):
        return low_memory_ops.instance_norm_(x, weight, bias, eps)
    if fast and x.dim() == 4:
        return fast_ops.instance_norm(x, weight, bias, eps)
    return F.instance_norm(x, weight=weight, bias=bias, eps=eps)


def normalize(norm: nn.Module, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
    """`norm(x)`, handing the style weights to the norms that take them."""
    return norm(x, style) if isinstance(norm, ConditionalInstanceNorm) else norm(x)


def normalize_relu(
    norm: nn.Module, relu: nn.Module, x: torch.Tensor, style: torch.Tensor | None, defer: bool
) -> torch.Tensor | deferred_norm.Deferred:
    """`relu(norm(x))`; with `defer`, where it can, left for the next convolution (`deferred_norm`)."""
    affine = _fast_affine(norm, style) if defer else None
    if affine is not None and deferred_norm.applies(x, affine[0]):
        return deferred_norm.normalise_rectify(x, *affine, norm.eps)
    return relu(normalize(norm, x, style))


def _fast_affine(norm: nn.Module, style: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (C,) scale and shift of a fast instance norm for this call; None for other norms and per-image styles.

    None too for a norm whose forward is hooked or replaced (tiling's whole-image statistics,
    `inference/global_norm.py`): deferring it would bypass its forward.
    """
    if norm._forward_pre_hooks or norm._forward_hooks or "forward" in vars(norm):
        return None
    if isinstance(norm, InstanceNorm) and norm.fast:
        return norm.weight, norm.bias
    if isinstance(norm, ConditionalInstanceNorm) and norm.fast and style is not None and style.dim() == 1:
        style = style.to(norm.weight.dtype)
        return style @ norm.weight, style @ norm.bias
    return None


def _norm_layer(kind: str, channels: int, num_styles: int = 1) -> nn.Module:
    if kind == "instance" and num_styles > 1:
        return ConditionalInstanceNorm(channels, num_styles)
    if kind == "instance":
        return InstanceNorm(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"model.norm must be instance, batch or none, not {kind!r}")


class ReflectionPad(nn.ReflectionPad2d):
    """Reflection padding that can run as `fast_ops.reflection_pad` (same values)."""

    fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_ops.reflection_pad(x, self.padding[0]) if self.fast else super().forward(x)


class ReLU(nn.ReLU):
    """`nn.ReLU` that can run as `fast_ops.relu` (same values and gradients)."""

    fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_ops.relu(x, self.inplace) if self.fast else super().forward(x)


class ConvLayer(nn.Sequential):
    """Reflection padding then convolution: zero padding darkens the borders of outputs.

    `blur`: the input is low-passed first (`antialias.blur`; it has no parameters, so the layer's
    weights are named as without it). `out`: in eager inference, a kept buffer of the output's
    shape to write into (`frame_buffers`). With the fast layers, `x` may be a `deferred_norm.Deferred`
    activation, whose scale and shift the convolution takes into its weights and bias. A third
    module, `int8`, where present: the layer's int8 form (`int8_convs.quantize`), which runs instead
    inside a compiled graph."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, blur: bool = False):
        super().__init__(
            ReflectionPad(kernel_size // 2),
            nn.Conv2d(in_ch, out_ch, kernel_size, stride),
        )
        self.blur = blur

    def forward(self, x: torch.Tensor | deferred_norm.Deferred, out: torch.Tensor | None = None) -> torch.Tensor:
        pad, conv, int8 = self[0], self[1], self._modules.get("int8")
        if int8 is not None and pad.fast and torch.compiler.is_compiling():
            return int8(pad(x))
        # Exact for a deferred x: blurring and reflection padding keep per-channel constants.
        x, weight, bias = deferred_norm.convolution_input(x, conv.weight, conv.bias)
        if self.blur:
            x = antialias.blur(x, fast=pad.fast)
        if not pad.fast or x.dim() != 4:
            return conv(pad(x))
        # The output layer's three channels by blocks; in eager inference, no padded copy of a large x.
        blocked = blocked_conv.applies(conv.in_channels, conv.out_channels, conv.stride[0])
        if low_memory_ops.is_large(x):
            return low_memory_ops.padded_conv(
                x, weight, bias, conv.stride[0], pad.padding[0], "reflect", blocked=blocked, out=out
            )
        if blocked:
            return blocked_conv.blocked_conv(pad(x), weight, bias, 0)
        return low_memory_ops.conv2d_into(out, pad(x), weight, bias, conv.stride[0], 0)


class ConvNormReLU(nn.Sequential):
    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, stride: int, norm: str, num_styles: int = 1, blur: bool = False
    ):
        super().__init__(
            ConvLayer(in_ch, out_ch, kernel_size, stride, blur),
            _norm_layer(norm, out_ch, num_styles),
            ReLU(inplace=True),
        )

    def forward(
        self,
        x: torch.Tensor | deferred_norm.Deferred,
        style: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
        defer: bool = False,
    ) -> torch.Tensor | deferred_norm.Deferred:
        """`defer`: the caller hands the result to a `ConvLayer`, which can take a deferred norm and ReLU."""
        conv, norm, relu = self
        return normalize_relu(norm, relu, conv(x, out), style, defer)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (He et al. 2016, as used by Johnson)."""

    def __init__(self, channels: int, norm: str, num_styles: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3, 1, norm, num_styles),
            ConvLayer(channels, channels, 3),
            _norm_layer(norm, channels, num_styles),
        )

    def forward(
        self, x: torch.Tensor, style: torch.Tensor | None = None, outs: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """`outs`: in eager inference, kept buffers for the middle activation and the output."""
        first, conv, norm = self.body
        middle_out, out = outs if outs is not None else (None, None)
        y = normalize(norm, conv(first(x, style, middle_out, defer=True), out), style)
        return low_memory_ops.residual_sum(x, y) if conv[0].fast else x + y


class UpsampleBlock(nn.Module):
    """x2 upsampling to an exact size, then norm and ReLU.

    "nearest" resizes then convolves, which avoids the checkerboard artefacts of transposed
    convolutions (Odena, Dumoulin & Olah, distill.pub 2016); "transposed" is Johnson's original.
    "bilinear" resizes by interpolation: its output then depends less on where the half-size grid
    falls, so it follows a moved photo more closely (docs/video.md); the fast layers run it as
    written, without the sub-pixel form that "nearest" has.
    Upsampling to the matching encoder size (not a fixed x2) lets odd input sizes round-trip
    with no data-dependent padding, so exported models take any H x W.
    """

    def __init__(self, in_ch: int, out_ch: int, mode: str, norm: str, num_styles: int = 1):
        super().__init__()
        if mode in ("nearest", "bilinear"):
            self.conv: nn.Module = ConvLayer(in_ch, out_ch, 3)
        elif mode == "transposed":
            self.conv = nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)
        else:
            raise ValueError(f"model.upsample must be nearest, bilinear or transposed, not {mode!r}")
        self.mode = mode
        self.norm = _norm_layer(norm, out_ch, num_styles)
        self.relu = ReLU(inplace=True)
        self.fast = False

    def forward(
        self,
        x: torch.Tensor | deferred_norm.Deferred,
        size: torch.Size,
        style: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
        defer: bool = False,
    ) -> torch.Tensor | deferred_norm.Deferred:
        """`out`: a kept buffer to write the upsampled activation into where it is exactly x2 (eager inference).

        `x` may be deferred (`deferred_norm`) where `takes_deferred`; `defer`: as `ConvNormReLU`'s.
        """
        if self.mode == "nearest" and self.fast:
            conv = self.conv[1]
            # Exact for a deferred x: the replicate padding keeps per-channel constants.
            x, weight, bias = deferred_norm.convolution_input(x, conv.weight, conv.bias)
            if low_memory_ops.applies(x) and tuple(size) == (2 * x.shape[-2], 2 * x.shape[-1]):
                x = low_memory_ops.upsample_conv_by_strips(x, weight, bias, out)
            else:
                x = fast_ops.upsample_conv(x, (size[0], size[1]), weight, bias)
        elif self.mode in ("nearest", "bilinear"):
            x = self.conv(F.interpolate(x, size=size, mode=self.mode))
        else:  # twice the input: one row/column too many where the encoder rounded up
            x = self.conv(x)[..., : size[0], : size[1]]
        return normalize_relu(self.norm, self.relu, x, style, defer)

    @property
    def takes_deferred(self) -> bool:
        return self.mode == "nearest"


class TransformerNet(nn.Module):
    """Maps an RGB image in [0, 1], (B, 3, H, W), to its stylised version, (B, 3, H, W).

    Any H, W >= 8 works, odd sizes included. In eval mode the output is clamped to [0, 1];
    in training mode it is left free so that the loss gradient never vanishes at the bounds.
    A network of several styles also takes their weights: `network(x, style)`.
    """

    def __init__(
        self,
        width: float = 1.0,
        num_residual_blocks: int = 5,
        upsample: str = "nearest",
        norm: str = "instance",
        num_styles: int = 1,
        downsample: str = "strided",
    ):
        super().__init__()
        self.config = config = TransformerConfig(width, num_residual_blocks, upsample, norm, num_styles, downsample)
        if width <= 0 or num_residual_blocks < 0:
            raise ValueError("model.width must be > 0 and model.num_residual_blocks >= 0")
        if num_styles < 1 or (num_styles > 1 and norm != "instance"):
            raise ValueError("several styles need model.norm=instance (their scale and shift live in its rows)")
        if downsample not in ("strided", "blur"):
            raise ValueError(f"model.downsample must be strided or blur, not {downsample!r}")
        blur = downsample == "blur"
        c1, c2, c3 = (max(1, round(c * config.width)) for c in (32, 64, 128))
        self.channels = (c1, c2, c3)  # at full, half and quarter resolution
        norm, n = config.norm, num_styles
        self.encoder = nn.Sequential(
            ConvNormReLU(3, c1, 9, 1, norm, n),
            ConvNormReLU(c1, c2, 3, 2, norm, n, blur),
            ConvNormReLU(c2, c3, 3, 2, norm, n, blur),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(c3, norm, n) for _ in range(config.num_residual_blocks)))
        self.upsample = nn.ModuleList(
            [UpsampleBlock(c3, c2, config.upsample, norm, n), UpsampleBlock(c2, c1, config.upsample, norm, n)]
        )
        self.output = ConvLayer(c1, 3, 9)
        self.frame_buffers: FrameBuffers | None = None  # eager inference with the fast layers only

    @property
    def num_styles(self) -> int:
        return self.config.num_styles

    def use_fast_ops(self, enabled: bool = True) -> TransformerNet:
        """Switches norms, padding, ReLUs and nearest upsampling to `fast_ops` (same result, faster, no export)."""
        for module in self.modules():
            if isinstance(module, (InstanceNorm, ConditionalInstanceNorm, ReflectionPad, ReLU, UpsampleBlock)):
                module.fast = enabled
        self.frame_buffers = FrameBuffers() if enabled else None
        return self

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """`style`: for a network of S > 1 styles, their weights, (S,) for the batch or (B, S) per image."""
        if self.num_styles > 1 and style is None:
            raise ValueError(f"this network holds {self.num_styles} styles: pass their weights, (S,) or (B, S)")
        kept = self.frame_buffers
        with kept.lease() if kept is not None and low_memory_ops.applies(x) else nullcontext() as buffers:
            full_out, half_out, quarters = self._kept_outputs(buffers, x) if buffers is not None else (None, None, None)
            # The decoder gets the encoder's sizes, not its activations: at 1080p the full-size one
            # alone is 133 MB in bf16, and holding a fresh one to the end raised peak memory by that much.
            # Norms and ReLUs whose next layer is a convolution are left to it where they can be (deferred_norm).
            y = self.encoder[0](x, style, full_out, defer=True)  # (B, c1, H, W)
            full = y.shape[-2:]
            y = self.encoder[1](y, style, half_out, defer=True)  # (B, c2, ceil(H/2), ceil(W/2))
            half = y.shape[-2:]
            y = self.encoder[2](y, style, quarters[0] if quarters else None)  # (B, c3, ceil(H/4), ceil(W/4))
            for index, block in enumerate(self.residuals):
                # Each block's input, middle and output in three different slots, turning by one a block.
                y = block(y, style, (quarters[(1 - index) % 3], quarters[(2 - index) % 3]) if quarters else None)
            # One statement each, so that y's previous value is freed.
            y = self.upsample[0](y, half, style, half_out, defer=self.upsample[1].takes_deferred)
            y = self.upsample[1](y, full, style, full_out, defer=True)
            y = self.output(y)  # (B, 3, H, W)
        return y if self.training else y.clamp(0.0, 1.0)

    def _kept_outputs(
        self, buffers: FrameBuffers, x: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, list[torch.Tensor] | None]:
        """Buffers for this frame's full-size and half-size activations, and three quarter-size slots.

        Each size has two lifetimes that never overlap (the encoder's output, then the decoder's),
        so one buffer of each serves both. Between them the full-size one is free: the encoder's
        last output and the residual blocks' activations (at most three alive at once) live in it.
        """
        n, _, h, w = x.shape
        downsample, last = self.encoder[1][0][1], self.encoder[2][0][1]  # stride 2, kernel 3, padding 1
        half_size, quarter_size = (-(-h // 2), -(-w // 2)), (-(-h // 4), -(-w // 4))
        full = buffers.get("full", (n, downsample.in_channels, h, w), x)
        half = buffers.get("half", (n, downsample.out_channels, *half_size), x)
        quarters = carve(full, 3, (n, last.out_channels, *quarter_size)) if full is not None else None
        return full, half, quarters
