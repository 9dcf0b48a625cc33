"""Turning decoded photos into training tensors, replacing the ones that cannot be used."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from stylenet.errors import DataError
from stylenet.imageio import UnreadableImageError


def resize_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    """A photo as a uint8 (3, H, W) tensor, its shorter side resized to `size`."""
    return v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True)])


def crop_transform(
    image_size: int, crop_scale: tuple[float, float] | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A random square crop of a resized photo, randomly flipped, as float in [0, 1].

    With `crop_scale` (smallest, largest fraction of the photo's area) the crop takes a random
    share of the photo within those bounds, with sides in a ratio between 3:4 and 4:3, resized to
    the `image_size` square: the network sees each photo at many scales, not at one.
    """
    if crop_scale is None:
        crop: v2.Transform = v2.RandomCrop(image_size)
    else:
        crop = v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True)
    return v2.Compose([crop, v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])


def train_transform(
    image_size: int, resize: int | None = None, crop_scale: tuple[float, float] | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """Shorter side to `resize` (default `image_size`), random square crop (`crop_transform`), random flip."""
    return v2.Compose([resize_transform(resize or image_size), crop_transform(image_size, crop_scale)])


def eval_transform(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Shorter side to `image_size`, centre square crop: fixed, so runs compare."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(image_size, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def is_usable(image: Image.Image | torch.Tensor, min_size: int) -> bool:
    sides = image.shape[-2:] if isinstance(image, torch.Tensor) else image.size
    return min(sides) >= min_size


def as_decoded(image: Any) -> Any:
    """The `decode` of photos already decoded (see `decode_once`): each item as it is."""
    return image


def decode_once(
    items: Sequence[Any], decode: Callable[[Any], Image.Image], size: int, min_size: int
) -> tuple[list[torch.Tensor], list[Any]]:
    """Each usable photo decoded and resized (shorter side `size`) as uint8 (3, H, W), and the items that were not.

    For photos that are cropped again and again: decoding a large JPEG and resizing it costs tens
    of milliseconds, a crop of the result almost nothing, and the result is the same every time.
    """
    resize = resize_transform(size)
    kept: list[torch.Tensor] = []
    unusable: list[Any] = []
    for item in items:
        try:
            image = decode(item)
        except UnreadableImageError:
            unusable.append(item)
            continue
        if is_usable(image, min_size):
            kept.append(resize(image))
        else:
            unusable.append(item)
    return kept, unusable


# One training sample: a (3, S, S) photo and how many unusable records were passed over to find it.
Photo = tuple[torch.Tensor, int]


class PhotoDataset(Dataset):
    """Map-style photos: `decode(item)` gives a PIL image (or a decoded tensor) or raises `UnreadableImageError`.

    An unusable item (undecodable, or smaller than `min_size` on a side) is replaced by the next
    usable one, and the replacement counted (see `collate_photos`): every batch stays full, so
    under DDP no rank has a step to skip while the others wait for its gradients.
    """

    def __init__(
        self,
        items: Sequence[Any],
        decode: Callable[[Any], Image.Image],
        transform: Callable[[Image.Image], torch.Tensor],
        min_size: int,
    ):
        self.items = items
        self.decode = decode
        self.transform = transform
        self.min_size = min_size

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Image.Image | None:
        """The photo at `index`, or None where it cannot be trained on."""
        try:
            image = self.decode(self.items[index])
        except UnreadableImageError:
            return None
        return image if is_usable(image, self.min_size) else None

    def __getitem__(self, index: int) -> Photo:
        # Deterministic: the same index is always replaced by the same photo, whatever the worker.
        for offset in range(len(self.items)):
            image = self.load((index + offset) % len(self.items))
            if image is not None:
                return self.transform(image), int(offset > 0)
        raise DataError(f"none of the {len(self.items)} training photos is usable")


def collate_photos(samples: list[Photo]) -> dict[str, Any]:
    """Stack photos into (B, 3, H, W); `skipped` counts the unusable records passed over for them."""
    return {"images": torch.stack([image for image, _ in samples]), "skipped": sum(n for _, n in samples)}
