"""Eager fast-path speed with and without the low-memory forms, blocked output layer, kept buffers, deferred norms.

    python scripts/inference_forms_speed.py [--model M.pt] [--repeats 6] [--sizes 512x512,1920x1080]

One process per memory-reuse setting (it is process-wide); inside each, the forms alternate frame
by frame on the same loaded model, so that all see the same machine:
- plain: `low_memory_ops.applies` answering False (padding copies, out-of-place instance norms and
  residual sums, the whole-image sub-pixel upsampling) and the output layer as one convolution;
- low-memory: `stylenet.networks.low_memory_ops` on (with the kept buffers, as below), the output
  layer as one convolution, the norms applied where they stand (as in plain);
- sum apart: as both below, but each residual block's sum a new tensor (`low_memory_ops.residual_sum`
  out of place);
- fresh outputs: as both below, but the network's largest activations allocated anew each frame
  instead of written into the buffers it keeps (`stylenet.networks.frame_buffers`);
- norms applied: as both below, but every instance norm and ReLU computed where it stands instead
  of left to the next convolution (`stylenet.networks.deferred_norm`);
- both: as `stylenet stylize` runs, the low-memory forms and the output layer by blocks
  (`stylenet.networks.blocked_conv`), into kept buffers, with deferred norms.
Prints the median ms per frame of each, and each form's against both, and
the page faults of a frame in each form (the process's minor faults over that frame, median).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORMS = ["plain", "low-memory", "sum apart", "fresh outputs", "norms applied", "both"]


def _child(model: str, reuse: bool, repeats: int, sizes: list[tuple[int, int]]) -> dict[str, float]:
    import torch

    import stylenet
    from stylenet.hardware import keep_freed_memory
    from stylenet.networks import blocked_conv, deferred_norm, low_memory_ops

    if reuse:
        keep_freed_memory()
    applies, few, residual_sum = low_memory_ops.applies, blocked_conv.FEW_CHANNELS, low_memory_ops.residual_sum
    deferrable = deferred_norm.applies

    run = stylenet.load_model(model, precision="bf16", compile=False)._run
    buffers = run.module.frame_buffers
    times: dict[str, list[float]] = {}
    faults: dict[str, list[float]] = {}
    with torch.inference_mode():
        for height, width in sizes:
            frame = torch.rand(1, 3, height, width)
            for repeat in range(repeats + 1):  # the first round warms up
                for form in FORMS:
                    low_memory_ops.applies = (lambda x: False) if form == "plain" else applies
                    blocked_conv.FEW_CHANNELS = 0 if form in ("plain", "low-memory") else few
                    applied = form in ("plain", "low-memory", "norms applied")
                    deferred_norm.applies = (lambda *args, **kwargs: False) if applied else deferrable
                    run.module.frame_buffers = None if form == "fresh outputs" else buffers
                    low_memory_ops.residual_sum = (lambda x, y: x + y) if form == "sum apart" else residual_sum
                    faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                    started = time.perf_counter()
                    run(frame)
                    if repeat:
                        key = f"{width}x{height} {form}"
                        times.setdefault(key, []).append(time.perf_counter() - started)
                        faults.setdefault(key, []).append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faulted)
    result = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    return result | {f"{key} faults": statistics.median(values) for key, values in faults.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "tests" / "data" / "quickstart_starry.pt"))
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--sizes", default="512x512,1920x1080", help="WxH, comma-separated")
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [(int(h), int(w)) for w, h in (size.split("x") for size in args.sizes.split(","))]
    if args.child:
        print(json.dumps(_child(args.model, args.child == "on", args.repeats, sizes)))
        return 0
    print(
        "| memory reuse | size | "
        + " | ".join(f"{form} ms" for form in FORMS)
        + " | "
        + " | ".join(f"{form} / both" for form in FORMS[:-1] if form != "low-memory")
        + " |"
    )
    print("|---" * (2 * len(FORMS) + 1) + "|")
    rows = []
    for reuse in ("off", "on"):
        command = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats)]
        command += ["--sizes", args.sizes, "--child", reuse]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        for height, width in sizes:
            ms = [result[f"{width}x{height} {form}"] for form in FORMS]
            cells = " | ".join(f"{value:.1f}" for value in ms)
            against = [ms[index] / ms[-1] for index, form in enumerate(FORMS[:-1]) if form != "low-memory"]
            ratios = " | ".join(f"{ratio:.2f}" for ratio in against)
            print(f"| {reuse} | {width}x{height} | {cells} | {ratios} |")
            rows.append((reuse, f"{width}x{height}", [result[f"{width}x{height} {form} faults"] for form in FORMS]))
    print()
    print("| memory reuse | size | page faults a frame: " + " | ".join(FORMS) + " |")
    print("|---" * (len(FORMS) + 2) + "|")
    for reuse, size, counts in rows:
        print(f"| {reuse} | {size} | " + " | ".join(f"{count:,.0f}" for count in counts) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
