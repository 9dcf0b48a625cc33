"""A folder tree of photos (e.g. COCO train2014): a sorted list of its image files.

A plain list rather than a `datasets` image folder: a local folder needs no Arrow table or
cache, and the files are taken as one set with no labels (the `imagefolder` builder guesses
splits from names containing "train"/"test"/"val" and labels from folder names, wrong for photo
dumps). Each worker decodes its own files, and a bad file is skipped instead of crashing the loader.
"""

from __future__ import annotations

from pathlib import Path

from stylenet.errors import DataError
from stylenet.imageio import list_images


def image_folder(root: str | Path, key: str = "data.root") -> list[Path]:
    """Every image file under `root`, recursively, in a stable order; one clear error naming the setting `key`
    (where `root` came from) if none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{key}={root} is not a folder; point it at a tree of photos, e.g. COCO train2014")
    files = list_images(root)
    if not files:
        raise DataError(f"{key}={root} holds no image files (.jpg, .png, ...)")
    return files
