"""The first layer's and the residual blocks' convolutions in int8, for compiled CPU inference.

`precision="int8"`: on CPUs with int8 matrix instructions (AMX-INT8, AVX512-VNNI) oneDNN multiplies
uint8 activations by int8 weights at up to twice its bf16 rate. The residual blocks hold about 70%
of the multiply-adds of the fast path (60% of the network as defined: the fast path upsamples with
fewer), and the first layer's input is an 8-bit photo, so these eleven
convolutions run in int8 and everything else stays bf16 (docs/performance.md, "int8
convolutions", has the speed and the distance from fp32). The other layers were tried and not
kept: the stride-2 ones gained nothing, the upsampling as four int8 phase kernels lost more in
interleaving them than it saved, and the output layer by blocks ran no faster.

Quantisation: weights per output channel, symmetric; activations per tensor with a fixed scale,
each convolution's input range measured once, when the runner is built, by the fp32 network on
scikit-image's sample photos (`calibration_photos`), its extreme tails left out (`TAIL`); values
beyond it saturate. The first layer's input is the photo in [0, 1], quantised in steps of 1/255:
exact for an 8-bit photo. The convolutions output bf16 for the norms after them.

Only inside a `torch.compile`d graph, where Inductor fuses each quantisation into the loop that
normalises the activation before it; eager calls of the same network run its bf16 layers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CALIBRATION_PHOTOS = ("rocket", "coffee", "motorcycle_right")  # none of them is scored by int8_quality.py
CALIBRATION_SIZES = (256, 512)  # longest side, px
# Each input's range leaves out this share of its values at either end, which then saturate: a few
# extreme values would otherwise set coarse steps for all the others. Chosen on the quickstart model,
# whose ranges have the longest tails, over eight photos at 320x240 (docs/performance.md, "int8
# convolutions"): the worst photo's PSNR against fp32 was 32.1 dB with the full ranges, 34.0, 34.6,
# 35.0 and 34.8 dB with 3e-5, 1e-4, 3e-4 and 1e-3 of the values left out.
TAIL = 3e-4


class Int8Conv(nn.Module):
    """One convolution (`conv`, stride 1 or 2, no padding of its own) from uint8 activations and int8 weights.

    `low`, `high`: the range of its input that maps onto 0..255 (low 0 for inputs after a ReLU).
    Call it on the padded bf16 input; it returns the bf16 output. The weights are buffers, so that
    a frozen compiled graph holds them as constants.
    """

    def __init__(self, conv: nn.Conv2d, low: float, high: float):
        super().__init__()
        low, high = min(low, 0.0), max(high, low + 1e-6)
        self.scale = (high - low) / 255
        self.zero_point = int(round(-low / self.scale))
        self.stride = list(conv.stride)
        weight = conv.weight.detach().float().cpu()
        scales = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
        quantized = torch.clamp(torch.round(weight / scales[:, None, None, None]), -127, 127).to(torch.int8)
        packed = torch.ops.onednn.qconv_prepack(
            quantized, scales, self.scale, self.zero_point, self.stride, [0, 0], [1, 1], 1, None
        )
        self.register_buffer("packed", packed)
        self.register_buffer("weight_scales", scales)
        self.register_buffer("weight_zero_points", torch.zeros(len(scales), dtype=torch.int64))
        self.register_buffer("bias", conv.bias.detach().float().cpu() if conv.bias is not None else None)

    def quantize(self, x: Tensor) -> Tensor:
        return torch.clamp(torch.round(x.float() * (1.0 / self.scale)) + self.zero_point, 0, 255).to(torch.uint8)

    def forward(self, padded: Tensor) -> Tensor:
        return torch.ops.onednn.qconv_pointwise(
            self.quantize(padded),
            self.scale,
            self.zero_point,
            self.packed,
            self.weight_scales,
            self.weight_zero_points,
            self.bias,
            self.stride,
            [0, 0],
            [1, 1],
            1,
            1.0,
            0,
            torch.bfloat16,
            "none",
            [],
            "",
        )


def quantized_layers(network: nn.Module) -> list[nn.Module]:
    """The `ConvLayer`s that run in int8: the first layer, then both of each residual block's."""
    layers = [network.encoder[0][0]]
    for block in network.residuals:
        first, conv, _ = block.body
        layers += [first[0], conv]
    return layers


def tails(x: Tensor, tail: float) -> tuple[float, float]:
    """(low, high): the values that a `tail` share of `x`'s elements lie below and above (low <= 0 <= high).

    `tail` 0: the minimum and maximum."""
    values = x.detach().flatten().float()
    count = max(1, int(values.numel() * tail))
    low = -values.neg().topk(count).values[-1].item()
    return min(0.0, low), max(0.0, values.topk(count).values[-1].item())


def input_ranges(network: nn.Module, photos: Iterable[Tensor], tail: float = TAIL) -> list[tuple[float, float]]:
    """(low, high) of each quantised layer's input: the widest `tails` over `photos` (and every style of a
    network of several), run through `network` (fp32, plain layers)."""
    layers = quantized_layers(network)
    ranges = [(0.0, 0.0)] * len(layers)

    def recorder(index: int):
        def record(_module: nn.Module, args: tuple) -> None:
            (low, high), (new_low, new_high) = ranges[index], tails(args[0], tail)
            ranges[index] = (min(low, new_low), max(high, new_high))

        return record

    hooks = [layer.register_forward_pre_hook(recorder(i)) for i, layer in enumerate(layers)]
    styles = torch.eye(network.num_styles) if network.num_styles > 1 else [None]
    try:
        with torch.inference_mode():
            for photo in photos:
                for style in styles:
                    network(photo, style)
    finally:
        for hook in hooks:
            hook.remove()
    return ranges


def calibration_photos() -> list[Tensor]:
    """scikit-image's sample photos at each of `CALIBRATION_SIZES`, as (1, 3, H, W) fp32 in [0, 1]."""
    from stylenet.data.demo import load_photo
    from stylenet.imageio import to_tensor

    photos = []
    for name in CALIBRATION_PHOTOS:
        image = to_tensor(load_photo(name)).unsqueeze(0)
        for size in CALIBRATION_SIZES:
            scale = size / max(image.shape[-2:])
            shape = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
            photos.append(F.interpolate(image, size=shape, mode="bilinear", antialias=True).clamp(0, 1))
    return photos


def quantize(fast: nn.Module, plain: nn.Module, tail: float = TAIL) -> None:
    """Gives `fast`'s quantised layers their int8 form (a module `int8` in each `ConvLayer`), calibrated on `plain`.

    `plain` is the same network with fp32 weights and plain layers; `fast` is the copy that runs
    (bf16, fast layers) and is changed. `tail`: as `input_ranges`' (not for the first layer).
    """
    plain = plain.float().cpu().eval()
    ranges = input_ranges(plain, calibration_photos(), tail)
    ranges[0] = (0.0, 1.0)  # the photo itself, in steps of 1/255
    for layer, (low, high) in zip(quantized_layers(fast), ranges, strict=True):
        layer.add_module("int8", Int8Conv(layer[1], low, high))


def available() -> str | None:
    """None where int8 convolutions run on this machine's CPU; else why not, in a few words."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.onednn, "qconv_pointwise"):
        return "this PyTorch has no oneDNN int8 convolutions"
    try:
        conv = nn.Conv2d(4, 4, 3)
        Int8Conv(conv, 0.0, 1.0)(torch.rand(1, 4, 5, 5, dtype=torch.bfloat16))
    except (RuntimeError, NotImplementedError) as error:
        return f"oneDNN's int8 convolution fails here ({str(error).strip().splitlines()[0][:120]})"
    return None
