"""Two forms of one training step, timed in turn in one process.

On a shared machine the speed of the same call moves from minute to minute (on the Xeons with AMX
by 3-4x, docs/performance.md), so two forms are only compared by calling them alternately and
taking the median of each pair's ratio. Used by relu_mask_speed.py and gram_speed.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
