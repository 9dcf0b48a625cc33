"""The compiled path against the eager one at each size, with and without memory reuse.

    python scripts/compiled_fresh_pages_speed.py [--model starry] [--sizes 512x512,...,2560x1440] [--repeats 5]
        [--precision bf16|int8]

Without memory reuse (the C library's defaults, as in a user's own script) glibc maps every block
over 32 MiB afresh and unmaps it when freed, so each of the compiled frame's large activations
faults its pages in again, every frame; the eager fast path keeps its largest ones between frames
(`stylenet.networks.frame_buffers`). One fresh process per memory-reuse setting runs the plain
API's two paths on the same frame, in turn call by call: `stylenet.load_model(MODEL)` (eager) and
`load_model(MODEL, compile=True)`, its compiled graph at every size ("graph") and as that runner
now chooses (`FastRunner.compiles`: the eager path where the compiled graph would pay fresh pages).
`--precision int8`: the compiled graph and `compile=True` are `load_model(MODEL, precision="int8",
compile=True)`'s, against the same eager bf16 path (where an int8 runner would run a frame uncompiled).
Prints the machine, then per size the median ms a frame over `--repeats` rounds (after two warm-up
rounds), the minor page faults a frame and eager / graph (above 1: the compiled graph is faster).
"""

from __future__ import annotations

import functools
import resource
import statistics
import sys
import time

from stylenet.benchmark.reuse_processes import answered_as_child, arguments, child_options, child_results, print_machine

PATHS = ("eager", "graph", "compile=True")


def _timed(run, frame) -> tuple[float, int]:
    faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    run(frame)
    return (time.perf_counter() - started) * 1e3, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faulted


def _child(
    model: str, reuse: bool, sizes: list[tuple[int, int]], repeats: int, precision: str = "bf16"
) -> dict[str, dict[str, float]]:
    import torch

    import stylenet
    from stylenet.hardware import keep_freed_memory

    keep_freed_memory(reuse)
    eager = stylenet.load_model(model)._run
    compiled = stylenet.load_model(model, precision=precision, compile=True)._run

    def graph(frame):
        compiled.eager_for_fresh_pages = False
        try:
            return compiled(frame)
        finally:
            compiled.eager_for_fresh_pages = True

    runs = {"eager": eager, "graph": graph, "compile=True": compiled}
    result = {}
    with torch.inference_mode():
        for height, width in sizes:
            frame = torch.rand(1, 3, height, width)
            samples: dict[str, list[tuple[float, int]]] = {path: [] for path in PATHS}
            for round_ in range(repeats + 2):
                for path in PATHS:
                    sample = _timed(runs[path], frame)
                    if round_ >= 2:
                        samples[path].append(sample)
            if not compiled.compiled:
                raise SystemExit("the compiled runner fell back to eager: its times would not be the compiled graph's")
            result[f"{width}x{height}"] = {
                path: {"ms": statistics.median(s[0] for s in got), "faults": statistics.median(s[1] for s in got)}
                for path, got in samples.items()
            }
    return result


def main() -> int:
    sizes = "512x512,640x480,800x600,1024x768,1280x720,1920x1080,2560x1440"
    args = arguments(__doc__.splitlines()[0], sizes, repeats=5, precisions=("bf16", "int8"))
    if answered_as_child(args, functools.partial(_child, precision=args.precision)):
        return 0
    print_machine()
    print("| memory reuse | size | eager ms | graph ms | compile=True ms | eager / graph", end=" ")
    print("| faults a frame: eager, graph |")
    print("|---|---|---|---|---|---|---|")
    for reuse, result in child_results(__file__, child_options(args)):
        for size, paths in result.items():
            ms = {path: paths[path]["ms"] for path in PATHS}
            faults = f"{paths['eager']['faults']:,.0f}, {paths['graph']['faults']:,.0f}"
            print(
                f"| {reuse} | {size} | {ms['eager']:.1f} | {ms['graph']:.1f} | {ms['compile=True']:.1f} "
                f"| {ms['eager'] / ms['graph']:.2f} | {faults} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
