"""The README's gallery: photos the shipped model never trained on, in each shipped style, and a blend row.

    python scripts/gallery.py docs/gallery.jpg [--size 512]

Rows: each photo, then its stylisation in every shipped style (columns in the model's order); the
last row blends the first two styles of the first photo in steps of a quarter. The photos are
scikit-image's (CC0), held out of the shipped model's training by name. Every picture comes from
`stylenet.load_model("paintings")`, as `stylenet stylize` runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contact_sheet import contact_sheet
from PIL import Image
from skimage import data

from stylenet import load_model

PHOTOS = ("chelsea", "astronaut", "coffee")


def _photo(name: str, size: int) -> Image.Image:
    picture = Image.fromarray(getattr(data, name)()).convert("RGB")
    scale = size / max(picture.size)
    return picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", type=int, default=512, help="longest side each photo is stylised at")
    args = parser.parse_args()
    model = load_model("paintings")
    rows = []
    for name in PHOTOS:
        photo = _photo(name, args.size)
        rows.append([(name, photo)] + [(style, model(photo, style=style)) for style in model.styles])
    first, second = model.styles[:2]
    photo = _photo(PHOTOS[0], args.size)
    blends = [
        (f"{first}={1 - w:g},{second}={w:g}", model(photo, style=f"{first}={1 - w},{second}={w}"))
        for w in (0, 0.25, 0.5, 0.75, 1)
    ]
    rows.append([(PHOTOS[0], photo)] + blends)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(rows).save(args.output, quality=88)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
