"""A folder tree of photos (e.g. COCO train2014) read through Hugging Face `datasets`.

The file list is built here and handed to the ``imagefolder`` builder as one explicit
``train`` split with labels dropped: left to itself, the builder guesses splits from names
containing "train"/"test"/"val" and labels from folder names, which is wrong for photo dumps.
Images stay encoded (``decode=False``) so that each worker decodes, and a bad file is
skipped instead of crashing the loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from stylenet.errors import DataError
from stylenet.imageio import list_images, open_rgb, to_rgb


def decode_record(record: dict[str, Any]) -> Image.Image:
    """Decode one row of an image dataset whose image column was cast with decode=False."""
    image = record["image"]
    if isinstance(image, Image.Image):  # a hub dataset that decodes for us
        return to_rgb(image)
    return open_rgb(image["bytes"] if image.get("bytes") else image["path"])


def image_folder(root: str | Path):
    """A `datasets.Dataset` with one undecoded ``image`` column for every image file under `root`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={root} is not a folder; point it at a tree of photos, e.g. COCO train2014")
    files = list_images(root)
    if not files:
        raise DataError(f"data.root={root} holds no image files (.jpg, .png, ...)")
    import datasets

    dataset = datasets.load_dataset(
        "imagefolder", data_files={"train": [str(f) for f in files]}, drop_labels=True, split="train"
    )
    return dataset.cast_column("image", datasets.Image(decode=False))
