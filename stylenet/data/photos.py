"""Turning decoded photos into training tensors, skipping the ones that cannot be used."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

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


class PhotoDataset(Dataset):
    """Map-style photos: `decode(item)` gives a PIL image or raises `UnreadableImageError`.

    An unusable item (undecodable, or smaller than `min_size` on a side) yields None, which
    `collate_photos` drops and counts, so one bad file never stops a run.
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

    def __getitem__(self, index: int) -> torch.Tensor | None:
        try:
            image = self.decode(self.items[index])
        except UnreadableImageError:
            return None
        return self.transform(image) if is_usable(image, self.min_size) else None


def collate_photos(samples: list[torch.Tensor | None]) -> dict[str, Any]:
    """Stack usable photos into (B, 3, H, W); `skipped` counts the unusable ones."""
    images = [s for s in samples if s is not None]
    stacked = torch.stack(images) if images else torch.empty(0, 3, 0, 0)
    return {"images": stacked, "skipped": len(samples) - len(images)}
