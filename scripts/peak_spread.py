"""How much the benchmark's peak convolution varies on this machine over time.

    python scripts/peak_spread.py [--seconds 40] [--precision bf16]

`stylenet benchmark` takes this machine's peak as the median of 5 calls of one large 3x3
convolution (`stylenet.benchmark.peak`). Where the matrix units are shared with other tenants
(virtual machines on the same physical cores), the rate of that convolution changes from minute
to minute, and so does every row's "% of peak". This calls the same convolution for `--seconds`
and prints the spread of its rate (GFLOPS: 2 x multiply-adds / s): minimum, deciles, maximum.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stylenet.benchmark.peak import CPU_SHAPES, WARMUP, peak_conv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    args = parser.parse_args()
    conv, flops = peak_conv(torch.device("cpu"), CPU_SHAPES, args.precision)
    c, s = CPU_SHAPES.conv_channels, CPU_SHAPES.conv_size
    rates = []
    with torch.inference_mode():
        for _ in range(WARMUP):
            conv()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            conv()
            rates.append(flops / (time.perf_counter() - start) / 1e9)
    deciles = ", ".join(f"{q:.0f}" for q in statistics.quantiles(rates, n=10))
    print(f"{args.precision} 3x3 convolution, {c}x{s}x{s}, {len(rates)} calls in {args.seconds:.0f} s (GFLOPS):")
    print(f"min {min(rates):.0f}; deciles {deciles}; max {max(rates):.0f}; median {statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
