"""Seconds a training step with the photos decoded at every crop against decoded once (data.cache_photos).

Real `train.py` runs of the default recipe on a folder: each setting runs 10 and 40 steps and the
difference is divided by 30, so start-up (imports, VGG, the style's Grams, the decoding once) is
left out; the two settings alternate, `--repeats` times. `--enlarge PX` trains on copies of the
photos enlarged to PX on the longer side (4032: a phone camera's), written to a temporary folder.

    python scripts/photo_cache_speed.py PHOTOS [--enlarge 4032] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from stylenet.imageio import list_images, open_rgb

ROOT = Path(__file__).resolve().parents[1]
STEPS = (10, 40)


def enlarged_copies(photos: Path, size: int, out: Path) -> Path:
    for path in list_images(photos):
        image = open_rgb(path)
        scale = size / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        image.save(out / f"{path.stem}.jpg", quality=92)
    return out


def run_seconds(photos: Path, cache: int, steps: int, out: Path) -> float:
    command = [
        sys.executable,
        "train.py",
        "data=folder",
        f"data.root={photos}",
        f"data.cache_photos={cache}",
        f"trainer.max_steps={steps}",
        f"paths.output_dir={out / f'run_{cache}_{steps}_{time.monotonic_ns()}'}",
        f"paths.kept_models_dir={out / 'models'}",
        "trainer.enable_progress_bar=false",
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--enlarge", type=int, help="train on copies enlarged to this many pixels on the longer side")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        photos = args.photos.resolve()
        if args.enlarge:
            photos = enlarged_copies(photos, args.enlarge, Path(tempfile.mkdtemp(dir=scratch)))
        per_step: dict[int, list[float]] = {0: [], 1024: []}
        for _ in range(args.repeats):
            for cache in per_step:
                short, long = (run_seconds(photos, cache, steps, scratch) for steps in STEPS)
                per_step[cache].append((long - short) / (STEPS[1] - STEPS[0]))
    for cache, seconds in per_step.items():
        label = "decoded at every crop (data.cache_photos=0)" if cache == 0 else "decoded once (data.cache_photos=1024)"
        runs = ", ".join(f"{s:.3f}" for s in seconds)
        print(f"{label}: {statistics.median(seconds):.3f} s a step (runs: {runs})")


if __name__ == "__main__":
    main()
