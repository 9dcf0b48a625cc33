"""Photos that installed packages ship, so a first run needs no dataset and no network.

scikit-image's sample photos are CC0 (see skimage/data/README.txt in its wheel).
"""

from __future__ import annotations

from PIL import Image

from stylenet.errors import DataError

# The last names are held out for validation first: two photos that show stylisation well.
TRAIN_PHOTOS = ("coffee", "rocket", "motorcycle_left", "motorcycle_right", "camera")
VALIDATION_PHOTOS = ("chelsea", "astronaut")
# Each photo appears this many times per epoch (as different random crops), so that an epoch
# is a few hundred steps rather than one batch.
EPOCH_REPEATS = 200


def load_photo(name: str) -> Image.Image:
    """One of scikit-image's sample photos by name (`coffee`, `motorcycle_left`, ...), as an RGB image."""
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return Image.fromarray(left if name.endswith("left") else right)
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def demo_photos() -> tuple[list[Image.Image], list[Image.Image]]:
    """(training photos, validation photos) as RGB PIL images."""
    try:
        return [load_photo(n) for n in TRAIN_PHOTOS], [load_photo(n) for n in VALIDATION_PHOTOS]
    except ImportError as error:
        raise DataError("data=demo needs scikit-image for its sample photos: pip install scikit-image") from error
