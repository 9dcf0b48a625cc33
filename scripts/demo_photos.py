"""Writes scikit-image's CC0 photos to a folder, for trying and measuring models without a dataset.

    python scripts/demo_photos.py OUT_DIR [--held-out]

--held-out writes only the photos the quickstart keeps out of training (chelsea, astronaut).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from skimage import data

ALL = ("astronaut", "chelsea", "coffee", "rocket")
HELD_OUT = ("chelsea", "astronaut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--held-out", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in HELD_OUT if args.held_out else ALL:
        Image.fromarray(getattr(data, name)()).save(args.out / f"{name}.jpg", quality=95)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
