"""Eager fast-path speed with and without the low-memory forms and the output layer by blocks.

    python scripts/inference_forms_speed.py [--model M.pt] [--repeats 6]

One process per memory-reuse setting (it is process-wide); inside each, the forms alternate frame
by frame on the same loaded model, so that all see the same machine:
- plain: `low_memory_ops.applies` answering False (padding copies, out-of-place instance norms,
  the whole-image sub-pixel upsampling) and the output layer as one convolution;
- low-memory: `stylenet.networks.low_memory_ops` on, the output layer as one convolution;
- both: as `stylenet stylize` runs, the output layer by blocks (`stylenet.networks.blocked_conv`).
Prints median ms per frame of each, and plain / both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = [(512, 512), (1080, 1920)]
FORMS = ["plain", "low-memory", "both"]


def _child(model: str, reuse: bool, repeats: int) -> dict[str, float]:
    import torch

    import stylenet
    from stylenet.hardware import keep_freed_memory
    from stylenet.networks import blocked_conv, low_memory_ops

    if reuse:
        keep_freed_memory()
    applies, few = low_memory_ops.applies, blocked_conv.FEW_CHANNELS
    run = stylenet.load_model(model, precision="bf16", compile=False)._run
    times: dict[str, list[float]] = {}
    with torch.inference_mode():
        for height, width in SIZES:
            frame = torch.rand(1, 3, height, width)
            for repeat in range(repeats + 1):  # the first round warms up
                for form in FORMS:
                    low_memory_ops.applies = (lambda x: False) if form == "plain" else applies
                    blocked_conv.FEW_CHANNELS = few if form == "both" else 0
                    started = time.perf_counter()
                    run(frame)
                    if repeat:
                        times.setdefault(f"{width}x{height} {form}", []).append(time.perf_counter() - started)
    return {key: statistics.median(values) * 1e3 for key, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "tests" / "data" / "quickstart_starry.pt"))
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.model, args.child == "on", args.repeats)))
        return 0
    print("| memory reuse | size | plain ms | low-memory ms | both ms | plain / both |")
    print("|---|---|---|---|---|---|")
    for reuse in ("off", "on"):
        command = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats), "--child", reuse]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        for height, width in SIZES:
            ms = [result[f"{width}x{height} {form}"] for form in FORMS]
            cells = " | ".join(f"{value:.1f}" for value in ms)
            print(f"| {reuse} | {width}x{height} | {cells} | {ms[0] / ms[2]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
