"""Eager fast-path time of a batch of four images: in one call, and one image at a time.

    python scripts/batch_split_speed.py [--model starry] [--sizes 256x256,384x384,512x512,1920x1080] [--repeats 5]

On a CPU, `stylenet.inference.fast.FastRunner` runs a batch one image at a time from
`SPLIT_PIXELS` an image on. This times both forms on the same loaded model, alternating call by
call so that both see the same minutes of the machine, and prints the median ms of a batch of
four in each form and their ratio (above 1: one image at a time is faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry", help="a .pt model or a shipped style's name")
    parser.add_argument("--sizes", default="256x256,384x384,512x512,1920x1080", help="WxH, comma-separated")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    import stylenet
    from stylenet.inference import fast

    run = stylenet.load_model(args.model, compile=False)._run
    forms = {"one call": float("inf"), "one image at a time": 0}
    print(f"| {args.batch} images of | " + " | ".join(f"{form} ms" for form in forms) + " | one call / one at a time |")
    print("|---" * (len(forms) + 2) + "|")
    with torch.inference_mode():
        for size in args.sizes.split(","):
            width, height = (int(side) for side in size.split("x"))
            images = torch.rand(args.batch, 3, height, width)
            times: dict[str, list[float]] = {form: [] for form in forms}
            for repeat in range(args.repeats + 1):  # the first round warms up
                for form, split_pixels in forms.items():
                    fast.SPLIT_PIXELS = split_pixels
                    started = time.perf_counter()
                    run(images)
                    if repeat:
                        times[form].append((time.perf_counter() - started) * 1e3)
            medians = [statistics.median(values) for values in times.values()]
            cells = " | ".join(f"{value:.1f}" for value in medians)
            print(f"| {width}x{height} | {cells} | {medians[0] / medians[1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
