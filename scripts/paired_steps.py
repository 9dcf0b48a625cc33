"""Two forms of one training step, timed in turn in one process.

On a shared machine the speed of the same call moves from minute to minute (on the Xeons with AMX
by 3-4x, docs/performance.md), so two forms are only compared by calling them alternately and
taking the median of each pair's ratio. Used by relu_mask_speed.py and gram_speed.py.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from stylenet.benchmark.machine import machine_info
from stylenet.benchmark.report import machine_lines
from stylenet.benchmark.training import project_train_step_factory
from stylenet.hardware import keep_freed_memory

StepFactory = Callable[[int, int], Callable[[], None]]  # (batch, size) -> a training step


def compare_steps(new: tuple[str, Callable[[], None]], old: tuple[str, Callable[[], None]], pairs: int) -> None:
    """Warm both steps up (compilation included), time `pairs` alternating calls, print the medians
    and the median of the paired ratios new / old."""
    steps = dict([new, old])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(3):
        for step in steps.values():
            step()
    for _ in range(pairs):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(f"{name}: median {statistics.median(seconds) * 1e3:.0f} ms a step")
    ratios = [a / b for a, b in zip(times[new[0]], times[old[0]], strict=True)]
    print(
        f"{new[0]} / {old[0]}, paired: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f} to {max(ratios):.3f})"
    )


def compare_with_default_step(
    description: str, alone: Callable[[int, int], None], name: str, old: tuple[str, StepFactory]
) -> None:
    """The command line both scripts share (`--pairs`, `--size`, `--batch`): the machine, then
    `alone(batch, size)`, then the default compiled bf16 training step, called `name`, against
    `old`'s, with memory reuse on as `train.py` sets it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    print("\n".join(machine_lines(machine_info())))
    keep_freed_memory()
    alone(args.batch, args.size)
    compare_steps(
        (name, project_train_step_factory(args.batch, args.size, "bf16", "cpu", channels_last=True, compile=True)),
        (old[0], old[1](args.batch, args.size)),
        args.pairs,
    )
