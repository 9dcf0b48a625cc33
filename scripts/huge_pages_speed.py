"""Fresh activations in 2 MB pages or 4 KB pages: PyTorch's `THP_MEM_ALLOC_ENABLE`, measured.

    python scripts/huge_pages_speed.py [--model starry] [--sizes 512x512,1920x1080] [--rounds 3] [--repeats 6]

With `THP_MEM_ALLOC_ENABLE=1` PyTorch's CPU allocator asks the kernel for transparent huge pages
(`madvise`) on every allocation of 2 MB or more, so a fresh activation's first touch faults once per
2 MB instead of once per 4 KB. The variable is read once, at the process's first large allocation,
so each measurement is a fresh process: the plain API (`stylenet.load_model`, eager) and its
compiled path at each size, with the variable unset and set, in turn for `--rounds` rounds, with
the C library's default allocator (no memory reuse). Each process prints the median ms of
`--repeats` frames after three warm-up frames, its minor page faults a frame (median) and its peak
RSS. Prints the machine, then a table of the medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PATHS = ("eager", "compiled")


def _child(model: str, compile: bool, height: int, width: int, repeats: int) -> dict[str, float]:
    import resource
    import time

    import torch

    import stylenet

    run = stylenet.load_model(model, compile=compile)._run
    run.eager_for_fresh_pages = False  # the compiled graph at every size, as with memory reuse
    frame = torch.rand(1, 3, height, width)
    seconds, faults = [], []
    with torch.inference_mode():
        for repeat in range(repeats + 3):
            faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            run(frame)
            if repeat >= 3:
                seconds.append(time.perf_counter() - started)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faulted)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms": statistics.median(seconds) * 1e3, "faults": statistics.median(faults), "peak_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry")
    parser.add_argument("--sizes", default="512x512,1920x1080", help="WxH, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "eager|compiled HxW"
    args = parser.parse_args()
    if args.child:
        path, size = args.child.split()
        height, width = map(int, size.split("x"))
        print(json.dumps(_child(args.model, path == "compiled", height, width, args.repeats)))
        return 0
    from stylenet.benchmark.machine import machine_info
    from stylenet.benchmark.report import machine_lines

    print("\n".join(machine_lines(machine_info())))
    sizes = [(int(h), int(w)) for w, h in (size.split("x") for size in args.sizes.split(","))]
    base = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for path in PATHS:
            for height, width in sizes:
                for pages in ("4 KB", "2 MB"):
                    env = base | ({"THP_MEM_ALLOC_ENABLE": "1"} if pages == "2 MB" else {})
                    command = [sys.executable, __file__, "--model", args.model, "--repeats", str(args.repeats)]
                    command += ["--child", f"{path} {height}x{width}"]
                    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
                    results.setdefault((path, f"{width}x{height}", pages), []).append(json.loads(done.stdout))
    print()
    print("| path | size | pages | ms a frame | 4 KB / 2 MB | page faults a frame | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for path in PATHS:
        for height, width in sizes:
            size = f"{width}x{height}"
            rows = {pages: results[(path, size, pages)] for pages in ("4 KB", "2 MB")}
            ms = {pages: statistics.median(run["ms"] for run in runs) for pages, runs in rows.items()}
            for pages, runs in rows.items():
                faults = statistics.median(run["faults"] for run in runs)
                peak = max(run["peak_mb"] for run in runs)
                ratio = f"{ms['4 KB'] / ms['2 MB']:.2f}" if pages == "2 MB" else ""
                print(f"| {path} | {size} | {pages} | {ms[pages]:.1f} | {ratio} | {faults:,.0f} | {peak:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
