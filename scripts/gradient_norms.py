"""How large a run's gradients were, window by window: the median and the largest logged norm.

    python scripts/gradient_norms.py RUN_DIR [--window 250]

Reads `train/grad_norm` from the run's TensorBoard events: the norm of the network's gradients
before any clipping (`trainer.gradient_clip_val`), logged every `trainer.log_every_n_steps` steps.
A window whose largest norm is hundreds of times its median holds the batches that clipping tames.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAG = "train/grad_norm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (holding tensorboard/)")
    parser.add_argument("--window", type=int, default=250, help="steps per line (default: 250)")
    args = parser.parse_args()
    if not (args.run / "tensorboard").is_dir():
        raise SystemExit(f"{args.run}: not a run folder (it holds no tensorboard/ folder)")
    events = EventAccumulator(str(args.run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    if TAG not in events.Tags()["scalars"]:
        raise SystemExit(f"{args.run}: no {TAG} in its TensorBoard events (a run from before it was logged?)")
    windows: dict[int, list[float]] = {}
    for event in events.Scalars(TAG):
        windows.setdefault(event.step // args.window, []).append(event.value)
    print("| steps | logged | median norm | largest norm | largest / median |\n|---|---|---|---|---|")
    for window, norms in sorted(windows.items()):
        median, largest = statistics.median(norms), max(norms)
        steps = f"{window * args.window}-{(window + 1) * args.window - 1}"
        print(f"| {steps} | {len(norms)} | {median:.1f} | {largest:.1f} | {largest / median:.1f} |")


if __name__ == "__main__":
    main()
