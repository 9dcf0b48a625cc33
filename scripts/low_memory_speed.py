"""Eager fast-path speed with and without the low-memory forms (`stylenet.networks.low_memory_ops`).

    python scripts/low_memory_speed.py [--model M.pt] [--repeats 6]

One process per memory-reuse setting (it is process-wide); inside each, the two forms alternate
frame by frame on the same loaded model, so that both see the same machine. "plain" is the fast
path with `low_memory_ops.applies` answering False: padding copies, out-of-place instance norms
and the whole-image sub-pixel upsampling. Prints median ms per frame and plain / low-memory.
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


def _child(model: str, reuse: bool, repeats: int) -> dict[str, float]:
    import torch

    import stylenet
    from stylenet.hardware import keep_freed_memory
    from stylenet.networks import low_memory_ops

    if reuse:
        keep_freed_memory()
    applies = low_memory_ops.applies
    run = stylenet.load_model(model, precision="bf16", compile=False)._run
    times: dict[str, list[float]] = {}
    with torch.inference_mode():
        for height, width in SIZES:
            frame = torch.rand(1, 3, height, width)
            for repeat in range(repeats + 1):  # the first round warms up
                for form in ("plain", "low-memory"):
                    low_memory_ops.applies = applies if form == "low-memory" else (lambda x: False)
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
    print(f"{'memory reuse':<14}{'size':<11}{'plain ms':>10}{'low-memory ms':>15}{'plain / low-memory':>20}")
    for reuse in ("off", "on"):
        command = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats), "--child", reuse]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        for height, width in SIZES:
            plain, low = result[f"{width}x{height} plain"], result[f"{width}x{height} low-memory"]
            print(f"{reuse:<14}{f'{width}x{height}':<11}{plain:>10.1f}{low:>15.1f}{plain / low:>20.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
