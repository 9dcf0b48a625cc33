"""Peak resident memory and wall time of `stylenet stylize` on 1920x1080 and 3840x2160 photos.

    python scripts/peak_memory.py [--model M.pt]

Each case runs `stylenet stylize` in a fresh process; its peak RSS is read from the kernel's
accounting of that child (getrusage RUSAGE_CHILDREN), measured from a parent that imports no
torch, so the figure is the child's own. The photo is scikit-image's astronaut, upscaled. The
last cases are a 1080p clip (scripts/make_demo_video.py), which `stylize` compiles for and runs
with memory reuse (`stylenet.hardware.keep_freed_memory`), as it does for all repeated work, and
the same without memory reuse.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CASES = [  # (label, width, height, extra stylize options)
    ("1080p", 1920, 1080, []),
    ("1080p compiled", 1920, 1080, ["--compile", "on"]),
    ("4K untiled", 3840, 2160, []),
    ("4K tiles of 1024", 3840, 2160, ["--tile", "1024"]),
    ("4K tiles of 512", 3840, 2160, ["--tile", "512"]),
    ("1080p video, 24 frames", 1920, 1080, ["--batch-size", "1"]),  # frame by frame, as the images
    ("1080p video, no reuse", 1920, 1080, ["--batch-size", "1", "--memory-reuse", "off"]),
]


def _one(command: list[str]) -> None:
    """Child mode: run `command`, then print its peak RSS (MB) and wall seconds."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        return
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"{peak_mb:.0f} MB, {seconds:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "tests" / "data" / "quickstart_starry.pt")
    args = parser.parse_args()
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    with tempfile.TemporaryDirectory(prefix="stylenet-memory-") as tmp:
        print(f"{'case':<26}{'peak RSS, wall time (load, stylise, save)'}")
        for label, width, height, extra in CASES:
            video = "video" in label
            source = Path(tmp) / f"{width}x{height}.{'mp4' if video else 'png'}"
            if video and not source.exists():
                maker = [sys.executable, str(REPO / "scripts" / "make_demo_video.py"), str(source)]
                subprocess.run(
                    [*maker, "--seconds", "1", "--size", f"{width}x{height}"], check=True, capture_output=True
                )
            elif not source.exists():
                photo.resize((width, height), Image.BICUBIC).save(source)
            command = [sys.executable, "-m", "stylenet.cli", "stylize", str(args.model), str(source)]
            command += ["-o", str(Path(tmp) / f"out{source.suffix}"), "--overwrite", *extra]  # one output, every case
            # A wrapper process per case: RUSAGE_CHILDREN is a maximum over all children so far.
            wrapper = [sys.executable, __file__, "--one", *command]
            result = subprocess.run(wrapper, capture_output=True, text=True, cwd=REPO)
            print(f"{label:<26}{result.stdout.strip() or result.stderr.strip().splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        _one(sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
