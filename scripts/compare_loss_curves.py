"""Do the speed options change what training learns? Two runs, same seed and data, compared.

    python scripts/compare_loss_curves.py [--steps 300] [--window 50] [extra train.py overrides]

Runs the quickstart experiment on the reference path (fp32, NCHW, no compile) and on the fast
path (precision=auto: bf16 here, channels-last, compiled), then prints
the mean training loss per window of steps, with the standard error of each window's mean. A
third run repeats the reference with another seed (other weights, other photo order): the gap
between the two references is the run-to-run noise a difference must be judged against, since
half precision perturbs a trajectory much as another seed does.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = ["trainer.precision=32-true", "channels_last=false", "compile=false"]
RUNS = {  # the first is the reference; the second, the same with another seed, measures run-to-run noise
    "reference (fp32, NCHW, eager)": REFERENCE,
    "reference, seed 1": [*REFERENCE, "seed=1"],
    "bf16, channels-last, compiled": ["compile=true"],
}


def _losses(run_dir: Path) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {event.step: event.value for event in events.Scalars("train/total_loss")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=50)
    args, overrides = parser.parse_known_args()
    curves: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="stylenet-curves-") as tmp:
        for index, (name, speed) in enumerate(RUNS.items()):
            run_dir = Path(tmp) / f"run{index}"
            command = [
                sys.executable,
                str(REPO / "train.py"),
                "experiment=quickstart",
                f"trainer.max_steps={args.steps}",
                "trainer.max_time=null",  # every run to the same step, however slow the path
                "trainer.log_every_n_steps=1",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
                f"paths.output_dir={run_dir}",
                f"paths.kept_models_dir={Path(tmp) / 'kept'}",
                *speed,
                *overrides,
            ]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
            print(f"{name}: {args.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
            curves[name] = _losses(run_dir)
    names = list(curves)
    print(f"\n{'steps':<12}" + "".join(f"{n[:30]:>34}" for n in names) + f"{'seed gap':>10}{'fast gap':>10}")
    for start in range(0, args.steps, args.window):
        cells, means = [], []
        for name in names:
            values = [v for step, v in curves[name].items() if start <= step < start + args.window]
            mean = statistics.fmean(values)
            sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
            means.append(mean)
            cells.append(f"{mean:>22.4f} +/- {sem:<8.4f}")
        gaps = f"{means[1] - means[0]:>+10.4f}{means[2] - means[0]:>+10.4f}"
        print(f"{start:>5}-{start + args.window - 1:<6}" + "".join(f"{c:>34}" for c in cells) + gaps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
