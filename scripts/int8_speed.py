"""The compiled network in bf16 against `precision="int8"`, call by call in one process.

    python scripts/int8_speed.py [--model starry] [--sizes 512x512,640x480,1280x720,1920x1080] [--repeats 20]

Where other tenants share the cores' matrix units their rate moves from minute to minute, so rows
timed minutes apart (`stylenet benchmark`'s, each in a process of its own) can differ by more than
the change measured. Here one process per memory-reuse setting runs `stylenet.load_model(MODEL,
compile=True)` and `load_model(MODEL, precision="int8", compile=True)` on the same frame
(scikit-image's astronaut, resized), in turn call by call, each the compiled graph at every size
(as `compile=True` runs it where freed memory is kept, `FastRunner.compiles`). Prints the machine,
then per size the median ms a frame over `--repeats` rounds (after two warm-up rounds), frames/s,
and bf16 / int8 (above 1: int8 is faster).
"""

from __future__ import annotations

import statistics
import sys
import time

from stylenet.benchmark.reuse_processes import answered_as_child, arguments, child_options, child_results, print_machine

PATHS = ("bf16", "int8")


def _child(model: str, reuse: bool, sizes: list[tuple[int, int]], repeats: int) -> dict[str, dict[str, float]]:
    import torch

    import stylenet
    from stylenet.benchmark.backends import benchmark_frame
    from stylenet.hardware import keep_freed_memory

    keep_freed_memory(reuse)
    runs = {
        "bf16": stylenet.load_model(model, precision="bf16", compile=True)._run,
        "int8": stylenet.load_model(model, precision="int8", compile=True)._run,
    }
    for run in runs.values():
        run.eager_for_fresh_pages = False  # the compiled graph at every size
    result = {}
    with torch.inference_mode():
        for height, width in sizes:
            frame = benchmark_frame(height, width)
            samples: dict[str, list[float]] = {path: [] for path in PATHS}
            for round_ in range(repeats + 2):
                for path in PATHS:
                    started = time.perf_counter()
                    runs[path](frame)
                    if round_ >= 2:
                        samples[path].append((time.perf_counter() - started) * 1e3)
            if not all(run.compiled for run in runs.values()):
                raise SystemExit("a runner fell back to eager: its times would not be the compiled graph's")
            result[f"{width}x{height}"] = {path: statistics.median(got) for path, got in samples.items()}
    return result


def main() -> int:
    args = arguments(__doc__.splitlines()[0], "512x512,640x480,1280x720,1920x1080", repeats=20)
    if answered_as_child(args, _child):
        return 0
    print_machine()
    print("| memory reuse | size | bf16 ms | int8 ms | bf16 frames/s | int8 frames/s | bf16 / int8 |")
    print("|---|---|---|---|---|---|---|")
    for reuse, result in child_results(__file__, child_options(args)):
        for size, ms in result.items():
            print(
                f"| {reuse} | {size} | {ms['bf16']:.1f} | {ms['int8']:.1f} | {1e3 / ms['bf16']:.1f} "
                f"| {1e3 / ms['int8']:.1f} | {ms['bf16'] / ms['int8']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
