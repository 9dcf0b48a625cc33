"""Images/s of real `train.py` runs of the default recipe against the PyTorch example's training step.

    python scripts/train_speed.py PHOTOS [--repeats 2] [--reference-steps 5]

The project's figure is a run as a user starts it, data pipeline, loader workers, logging and
checkpoints included: `train.py` runs of 10 and 40 steps on PHOTOS (256 px crops, batch 4, the
default recipe and precision), the difference of their wall times over the 30 steps between, so
that start-up (imports, VGG, the style's Grams, compilation) is left out; an untimed run first
compiles the step into Inductor's cache. The reference is the
PyTorch example's step as `stylenet benchmark` times it (its VGG16, the style Grams computed once
before the loop, no data loading at all), in a fresh process under memory reuse, which `train.py`
also sets for itself. The two alternate `--repeats` times so that drift falls on both alike;
prints each run and the ratio of the medians (above 1: the project trains faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from photo_cache_speed import STEPS, run_seconds

from stylenet.benchmark.isolate import measure_in_subprocess
from stylenet.benchmark.machine import machine_info
from stylenet.benchmark.report import machine_lines

BATCH, SIZE = 4, 256  # the default recipe's (configs/data)
CACHE_PHOTOS = 1024  # the default data.cache_photos: photos decoded once
WARM_UP_STEPS = 2


def reference_seconds_per_step(steps: int, workdir: Path) -> float:
    spec = {"kind": "training", "variant": "reference-fp32", "size": SIZE, "batch": BATCH, "steps": steps}
    row = measure_in_subprocess({**spec, "memory_reuse": "on"}, workdir)
    if "ms_per_step" not in row:
        sys.exit(f"error: the reference step was not measured: {row.get('reason', row)}")
    return row["ms_per_step"] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="a folder of training photos")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=5, help="timed reference steps per measurement")
    args = parser.parse_args()
    if not args.photos.is_dir():
        sys.exit(f"error: {args.photos} is not a folder of photos")
    print("\n".join(machine_lines(machine_info())))
    project, reference = [], []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        # Untimed: the first run on a machine compiles the step (minutes) and fills Inductor's cache, which
        # the later runs read. Timed, that compilation fell in the short run only and the difference came
        # out near zero (one run read 128 images/s).
        run_seconds(args.photos.resolve(), CACHE_PHOTOS, WARM_UP_STEPS, scratch)
        for _ in range(args.repeats):
            short, long = (run_seconds(args.photos.resolve(), CACHE_PHOTOS, steps, scratch) for steps in STEPS)
            project.append((long - short) / (STEPS[1] - STEPS[0]))
            reference.append(reference_seconds_per_step(args.reference_steps, scratch))
    for name, seconds in (("train.py", project), ("reference step", reference)):
        runs = ", ".join(f"{BATCH / s:.2f}" for s in seconds)
        print(f"{name}: {BATCH / statistics.median(seconds):.2f} images/s (runs: {runs})")
    print(f"train.py / reference: {statistics.median(reference) / statistics.median(project):.2f}x")


if __name__ == "__main__":
    main()
