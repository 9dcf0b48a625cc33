"""Where the time of one compiled frame goes: `torch.profiler` over a few frames, kernels in groups.

    python scripts/frame_profile.py [--model starry] [--precision int8] [--size 640x480] [--frames 30]
                                    [--memory-reuse on]

Runs `stylenet.load_model(MODEL, precision=..., compile=True)` on scikit-image's astronaut resized
to --size, the compiled graph at that size (as `stylenet benchmark`'s compiled rows), with
Inductor's kernel profiling on so that each fused loop is named in the profile. Prints the machine,
the median ms of --frames frames timed without the profiler, then the profiled self time a frame of
each group of kernels (int8 convolutions, other convolutions, Inductor's fused loops, copies, the
rest) and of the longest kernels. The profiler slows a frame a little: compare groups within one
run, and speeds with the timed median or `stylenet benchmark`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict

GROUPS = (
    ("int8 convolutions", ("onednn::qconv",)),
    ("convolutions", ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution")),
    ("fused loops", ("graph_",)),
    ("copies", ("aten::copy_", "aten::_to_copy", "stylenet::")),
)


def group_of(name: str) -> str:
    for group, prefixes in GROUPS:
        if name.startswith(prefixes):
            return group
    return "the rest"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry")
    parser.add_argument("--precision", default="int8", choices=["bf16", "int8"])
    parser.add_argument("--size", default="640x480", help="WxH")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--memory-reuse", default="on", choices=["on", "off"])
    parser.add_argument("--top", type=int, default=12, help="longest kernels listed")
    args = parser.parse_args()

    import torch
    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    import stylenet
    from stylenet.benchmark.backends import benchmark_frame
    from stylenet.benchmark.reuse_processes import heights_widths, print_machine
    from stylenet.hardware import keep_freed_memory

    inductor_config.cpp.enable_kernel_profile = True  # each fused loop a named event; before compiling
    keep_freed_memory(args.memory_reuse == "on")
    run = stylenet.load_model(args.model, precision=args.precision, compile=True)._run
    run.eager_for_fresh_pages = False  # the compiled graph at every size
    ((height, width),) = heights_widths(args.size)
    frame = benchmark_frame(height, width)
    with torch.inference_mode():
        for _ in range(5):  # compiles, then settles
            run(frame)
        if not run.compiled:
            raise SystemExit("the runner fell back to eager: its profile would not be the compiled graph's")
        times = []
        for _ in range(args.frames):
            started = time.perf_counter()
            run(frame)
            times.append((time.perf_counter() - started) * 1e3)
        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            for _ in range(args.frames):
                run(frame)
    events = [(e.key, e.self_cpu_time_total / 1e3 / args.frames) for e in profiled.key_averages()]
    groups: dict[str, float] = defaultdict(float)
    for name, ms in events:
        groups[group_of(name)] += ms

    print_machine()
    print(f"{args.model}, {args.precision}, compiled, {width}x{height}, memory reuse {args.memory_reuse}:")
    print(f"median {statistics.median(times):.1f} ms a frame over {args.frames} frames (no profiler)\n")
    print("| kernels | profiled ms a frame | share |")
    print("|---|---|---|")
    total = sum(groups.values())
    for group, _ in (*GROUPS, ("the rest", ())):
        print(f"| {group} | {groups[group]:.2f} | {groups[group] / total:.0%} |")
    print(f"| all | {total:.2f} | |\n")
    print("| kernel | group | profiled ms a frame |")
    print("|---|---|---|")
    for name, ms in sorted(events, key=lambda event: -event[1])[: args.top]:
        print(f"| `{name[:90]}` | {group_of(name)} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
