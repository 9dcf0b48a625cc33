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


def train_transform(image_size: int, resize: int | None = None) -> Callable[[Image.Image], torch.Tensor]:
    """Shorter side to `resize` (default `image_size`), random square crop, random flip."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(resize or image_size, antialias=True),
            v2.RandomCrop(image_size),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


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


def is_usable(image: Image.Image, min_size: int) -> bool:
    return min(image.size) >= min_size


# One training sample: a (3, S, S) photo and how many unusable records were passed over to find it.
Photo = tuple[torch.Tensor, int]


class PhotoDataset(Dataset):
    """Map-style photos: `decode(item)` gives a PIL image or raises `UnreadableImageError`.

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
