"""The decoder's upsampling as four phases or as one transposed convolution, timed in turn.

    python scripts/upsampling_speed.py [--model starry] [--sizes 512x512,640x480,1920x1080]
                                       [--repeats 8] [--train-pairs 8]

`stylenet.networks.fast_ops.upsample_conv` computes nearest x2 upsampling and a 3x3 convolution
either as a 2x2 convolution into four phase outputs that are then interleaved, or as one stride-2
transposed convolution with 4x4 kernels that writes the interleaved output itself (the same
values; `fast_ops.by_transposed_convolution` chooses, here overridden). One process per memory-reuse setting (it
is process-wide); inside each, the two forms alternate call by call on the same loaded model, so
that both meet the same minutes of a shared machine: the plain API's eager path and its compiled
path (`load_model(..., compile=True)`) at each size, then, in the memory-reuse process (as
`train.py` sets it), the compiled bf16 training step (`stylenet benchmark`'s) for `--train-pairs`
pairs. Prints the machine, the median ms of each form and their ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORMS = ("phases", "transposed")


def _choosing(state: dict[str, bool]) -> None:
    """Makes the upsampling form on CPUs follow `state["transposed"]`, in training too."""
    from stylenet.networks import fast_ops, low_memory_ops

    def by_transposed_convolution(x):  # compiled code guards on the flag: one graph per form
        return x.device.type == "cpu" and state["transposed"]

    for module in (fast_ops, low_memory_ops):
        module.by_transposed_convolution = by_transposed_convolution


def _alternate(calls: dict[str, object], state: dict[str, bool], repeats: int) -> dict[str, float]:
    """Median seconds of each form's call, the forms called in turn after two warm-up rounds."""
    times: dict[str, list[float]] = {form: [] for form in FORMS}
    for repeat in range(repeats + 2):
        for form in FORMS:
            state["transposed"] = form == "transposed"
            started = time.perf_counter()
            calls[form]()
            if repeat >= 2:
                times[form].append(time.perf_counter() - started)
    return {form: statistics.median(seconds) for form, seconds in times.items()}


def _child(model: str, reuse: bool, repeats: int, sizes: list[tuple[int, int]], train_pairs: int) -> dict:
    import torch
    import torch._dynamo

    import stylenet
    from stylenet.benchmark.training import project_train_step_factory
    from stylenet.hardware import keep_freed_memory

    if reuse:
        keep_freed_memory()
    torch._dynamo.config.cache_size_limit = 64  # two forms, several sizes
    state = {"transposed": True}
    _choosing(state)
    result: dict[str, float] = {}
    for path, compile in (("eager", False), ("compiled", True)):
        run = stylenet.load_model(model, compile=compile)._run
        run.eager_for_fresh_pages = False  # the compiled graph at every size, as with memory reuse
        with torch.inference_mode():
            for height, width in sizes:
                frame = torch.rand(1, 3, height, width)
                medians = _alternate({form: functools.partial(run, frame) for form in FORMS}, state, repeats)
                result |= {f"{path} {width}x{height} {form}": seconds for form, seconds in medians.items()}
    if reuse and train_pairs:
        step = project_train_step_factory(4, 256, "bf16", "cpu", channels_last=True, compile=True)
        medians = _alternate({form: step for form in FORMS}, state, train_pairs)
        result |= {f"training step 256 px, batch 4 {form}": seconds for form, seconds in medians.items()}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--sizes", default="512x512,640x480,1920x1080", help="WxH, comma-separated")
    parser.add_argument("--train-pairs", type=int, default=8)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [(int(h), int(w)) for w, h in (size.split("x") for size in args.sizes.split(","))]
    if args.child:
        print(json.dumps(_child(args.model, args.child == "on", args.repeats, sizes, args.train_pairs)))
        return 0
    from stylenet.benchmark.machine import machine_info
    from stylenet.benchmark.report import machine_lines

    print("\n".join(machine_lines(machine_info())))
    print()
    print("| memory reuse | what | phases ms | transposed ms | phases / transposed |")
    print("|---|---|---|---|---|")
    for reuse in ("off", "on"):
        command = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats)]
        command += ["--sizes", args.sizes, "--train-pairs", str(args.train_pairs), "--child", reuse]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        for what in dict.fromkeys(key.rsplit(" ", 1)[0] for key in result):
            phases, transposed = (result[f"{what} {form}"] * 1e3 for form in FORMS)
            print(f"| {reuse} | {what} | {phases:.1f} | {transposed:.1f} | {phases / transposed:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
