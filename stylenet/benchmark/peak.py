"""This machine's own peak: a large 3x3 convolution and a large matrix product per precision.

The rows' effective GFLOPS are given as a percentage of these, measured in the same run and
the same kind of process, so that a figure says how much of what this machine (and PyTorch's
kernels for it) can do the network uses, whatever the machine. fp32 is always measured; bf16
where the hardware runs it natively (or on a GPU), fp16 on GPUs only (CPUs emulate it). Each
runs as PyTorch's defaults run it (on GPUs, cuDNN's fp32 convolutions in TF32), as the rows do.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from stylenet.benchmark.machine import sync

WARMUP = 2  # the first calls pay allocation and the kernel library's choice of algorithm


@dataclass(frozen=True)
class PeakShapes:
    """What is timed: a (batch, channels, size, size) 3x3 convolution, channels -> channels, padding 1,
    and a (matmul_size x matmul_size) @ (matmul_size x matmul_size) product; median of `repeats`."""

    conv_batch: int = 1
    conv_channels: int = 128
    conv_size: int = 256
    matmul_size: int = 2048
    repeats: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


CPU_SHAPES = PeakShapes()  # compute bound on CPUs, a few seconds in all on two cores
# GPUs finish the CPU shapes in tens of microseconds, where launch and synchronisation would
# dominate; these take a millisecond or more.
CUDA_SHAPES = PeakShapes(conv_batch=16, matmul_size=8192, repeats=10)


def default_shapes(device_type: str) -> PeakShapes:
    return CUDA_SHAPES if device_type == "cuda" else CPU_SHAPES


def peak_precisions(device_type: str, native_bf16: bool) -> list[str]:
    """The precisions whose peak this machine has: fp32; bf16 where native or on a GPU; fp16 on GPUs."""
    if device_type == "cuda":
        return ["fp32", "bf16", "fp16"]
    return ["fp32", "bf16"] if native_bf16 else ["fp32"]


def _median_s(run: Any, repeats: int, device: Any) -> float:
    for _ in range(WARMUP):
        run()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_conv(device: Any, shapes: PeakShapes, precision: str) -> tuple[Callable[[], Any], int]:
    """The peak's 3x3 convolution in `precision` as a call (run it under inference mode), and its FLOPs."""
    import torch
    import torch.nn.functional as F

    from stylenet.inference.fast import DTYPES

    dtype = DTYPES[precision]
    n, c, s = shapes.conv_batch, shapes.conv_channels, shapes.conv_size
    generator = torch.Generator().manual_seed(0)
    # Channels-last: oneDNN's native layout for bf16 (NCHW is reordered on every call) and
    # the layout of the fast paths; cuDNN's tensor-core kernels prefer it too.
    x = torch.randn(n, c, s, s, generator=generator).to(device, dtype, memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, generator=generator).div(c * 3).to(device, dtype, memory_format=torch.channels_last)
    return functools.partial(F.conv2d, x, w, padding=1), 2 * n * c * c * 9 * s * s


def measure_peak(device: Any, shapes: PeakShapes, precisions: list[str]) -> dict[str, float]:
    """{"conv3x3_<precision>_gflops": ..., "matmul_<precision>_gflops": ...} on `device`, 2 x multiply-adds / s."""
    import torch

    from stylenet.inference.fast import DTYPES

    m = shapes.matmul_size
    generator = torch.Generator().manual_seed(1)
    peak = {}
    for precision in precisions:
        dtype = DTYPES[precision]
        conv, flops = peak_conv(device, shapes, precision)
        with torch.inference_mode():
            seconds = _median_s(conv, shapes.repeats, device)
        peak[f"conv3x3_{precision}_gflops"] = flops / seconds / 1e9
        a, b = (torch.randn(m, m, generator=generator).div(m**0.5).to(device, dtype) for _ in range(2))
        out = torch.empty(m, m, device=device, dtype=dtype)  # preallocated: the allocator stays out of the timing
        with torch.inference_mode():
            seconds = _median_s(functools.partial(torch.mm, a, b, out=out), shapes.repeats, device)
        peak[f"matmul_{precision}_gflops"] = 2 * m**3 / seconds / 1e9
    return peak


def format_peak(peak: dict[str, float]) -> str:
    """ "conv3x3 fp32 A bf16 B GFLOPS; matmul fp32 C bf16 D GFLOPS" from `measure_peak`'s figures."""
    parts = []
    for op in ("conv3x3", "matmul"):
        figures = [
            f"{p} {peak[f'{op}_{p}_gflops']:.0f}" for p in ("fp32", "bf16", "fp16") if f"{op}_{p}_gflops" in peak
        ]
        if figures:
            parts.append(f"{op} {' '.join(figures)} GFLOPS")
    return "; ".join(parts)


def peak_note(shapes: PeakShapes, memory_reuse: str, row: dict[str, Any]) -> str:
    """What the peak figures are, or why there are none."""
    if row.get("status") != "ok":
        return f"not measured: {row.get('reason', '')}"
    n, c, s, m = shapes.conv_batch, shapes.conv_channels, shapes.conv_size, shapes.matmul_size
    return (
        f"this machine's own, measured in this run like the rows (memory reuse {memory_reuse}): a 3x3 convolution "
        f"of a {n}x{c}x{s}x{s} channels-last tensor, {c} -> {c} channels, padding 1, and a {m}x{m} by {m}x{m} "
        f"matrix product, median of {shapes.repeats} after {WARMUP} warm-ups; 2 x multiply-adds / s"
    )
