"""Writes scikit-image's CC0 photos to a folder, for trying and measuring models without a dataset.

    python scripts/demo_photos.py OUT_DIR [--held-out | --training]

--held-out writes only the photos the quickstart keeps out of training (chelsea, astronaut);
--training only the ones it trains on (coffee, rocket, the two motorcycle views, camera), to
score a model on what it learnt from as well as on what it never saw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stylenet.atomic_write import folder_problem
from stylenet.data.demo import TRAIN_PHOTOS, VALIDATION_PHOTOS, load_photo

ALL = ("astronaut", "chelsea", "coffee", "rocket")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--held-out", action="store_true")
    which.add_argument("--training", action="store_true")
    args = parser.parse_args(argv)
    problem = folder_problem(args.out)
    if problem is not None:
        parser.error(f"{args.out}: {problem}: name a folder to write the photos in")
    args.out.mkdir(parents=True, exist_ok=True)
    names = VALIDATION_PHOTOS if args.held_out else TRAIN_PHOTOS if args.training else ALL
    for name in names:
        load_photo(name).save(args.out / f"{name}.jpg", quality=95)
    print(f"wrote {len(names)} photos to {args.out}")


if __name__ == "__main__":
    main()
