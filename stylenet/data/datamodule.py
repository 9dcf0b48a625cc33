"""Training and validation photos for style transfer: `data=demo|folder|hub`."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stylenet.data.demo import EPOCH_REPEATS, demo_photos
from stylenet.data.folder import decode_record, image_folder
from stylenet.data.hub import StreamedPhotos, hub_dataset
from stylenet.data.photos import PhotoDataset, collate_photos, eval_transform, is_usable, train_transform
from stylenet.errors import ConfigError, DataError
from stylenet.imageio import UnreadableImageError

log = logging.getLogger(__name__)

SOURCES = ("demo", "folder", "hub")


def _first_usable(records, order, count: int, min_size: int) -> list[tuple[int, Image.Image]]:
    """Up to `count` usable photos in `order`, each with its position in `order`."""
    found: list[tuple[int, Image.Image]] = []
    for position, index in enumerate(order):
        if len(found) == count:
            break
        try:
            image = decode_record(records[index])
        except UnreadableImageError:
            continue
        if is_usable(image, min_size):
            found.append((position, image))
    return found


def _unusable_before(taken: list[tuple[int, Image.Image]]) -> int:
    """Records passed over before the last of `taken` (position, photo) pairs: the unusable ones."""
    return taken[-1][0] + 1 - len(taken)


class PhotoDataModule(pl.LightningDataModule):
    """Random square crops of photos for training; fixed centre crops for validation.

    Validation photos come from `val_root` when given, else the first `val_size` usable
    photos of the (seeded) shuffled collection are held out. Unusable files met while
    choosing them are counted in `skipped_at_setup`; those met during training are counted
    per batch (see `collate_photos`).
    """

    def __init__(
        self,
        source: str = "demo",
        root: str | None = None,
        val_root: str | None = None,
        name: str | None = None,
        split: str = "train",
        streaming: bool = True,
        image_column: str = "image",
        image_size: int = 256,
        resize: int | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        val_size: int = 8,
        min_size: int = 32,
        seed: int = 0,
    ):
        super().__init__()
        if source not in SOURCES:
            raise ConfigError(f"data.source={source!r}: use one of {', '.join(SOURCES)}")
        if source == "folder" and not root:
            raise ConfigError("data=folder needs data.root=/path/to/photos")
        if source == "hub" and not name:
            raise ConfigError("data=hub needs data.name=<hub dataset id>")
        if image_size < 16 or batch_size < 1 or val_size < 1:
            raise ConfigError("data.image_size must be >= 16, data.batch_size and data.val_size >= 1")
        self.save_hyperparameters()
        self.train_set: Any = None
        self.val_images: list[Image.Image] = []
        self.skipped_at_setup = 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        transform = train_transform(hp.image_size, hp.resize)
        if hp.source == "demo":
            train, self.val_images = demo_photos()
            self.val_images = self.val_images[: hp.val_size]
            self.train_set = PhotoDataset(train * EPOCH_REPEATS, lambda image: image, transform, hp.min_size)
        elif hp.source == "folder":
            self._setup_folder(transform)
        else:
            self._setup_hub(transform)
        if self.skipped_at_setup:
            log.warning("skipped %d unusable image(s) while choosing validation photos", self.skipped_at_setup)

    def _setup_folder(self, transform) -> None:
        hp = self.hparams
        records = image_folder(hp.root)
        order = list(range(len(records)))
        random.Random(hp.seed).shuffle(order)
        if hp.val_root:
            val_records = image_folder(hp.val_root)
            val = _first_usable(val_records, range(len(val_records)), hp.val_size, hp.min_size)
            if not val:
                raise DataError(f"data.val_root={hp.val_root} holds no usable image")
            train_order = order
        else:
            # Hold out at most half the photos, and find one more to train on, so that a folder
            # of broken files stops here rather than after a run of empty batches.
            wanted = min(hp.val_size, max(1, len(records) // 2))
            usable = _first_usable(records, order, wanted + 1, hp.min_size)
            if len(usable) < 2:
                raise DataError(
                    f"data.root={hp.root}: {len(usable)} usable image(s) among {len(records)} files; "
                    "need at least 2 (one to train on, one to validate)"
                )
            val = usable[:-1]
            train_order = order[val[-1][0] + 1 :]
        self.val_images = [image for _, image in val]
        self.skipped_at_setup += _unusable_before(val)
        self.train_set = PhotoDataset(records.select(train_order), decode_record, transform, hp.min_size)

    def _setup_hub(self, transform) -> None:
        hp = self.hparams
        dataset = hub_dataset(hp.name, hp.split, hp.streaming, hp.image_column)
        # Look a little past val_size: a few broken records must not starve validation.
        look = hp.val_size * 4
        head = list(dataset.take(look)) if hp.streaming else dataset.select(range(min(look, len(dataset))))
        usable = _first_usable(head, range(len(head)), hp.val_size, hp.min_size)
        if not usable:
            raise DataError(f"data.name={hp.name}: no usable image in its first {len(head)} records")
        self.val_images = [image for _, image in usable]
        self.skipped_at_setup += _unusable_before(usable)
        held_out = usable[-1][0] + 1
        rest = dataset.skip(held_out) if hp.streaming else dataset.select(range(held_out, len(dataset)))
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        self.train_set = StreamedPhotos(rest, transform, hp.min_size, rank, world)

    def val_batch(self, size: int | None = None) -> torch.Tensor:
        """The fixed validation photos as one (V, 3, S, S) tensor; S defaults to data.image_size."""
        transform = eval_transform(size or self.hparams.image_size)
        return torch.stack([transform(image) for image in self.val_images])

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        shuffle = not isinstance(self.train_set, StreamedPhotos)
        return DataLoader(
            self.train_set,
            batch_size=hp.batch_size,
            shuffle=shuffle,
            num_workers=hp.num_workers,
            collate_fn=collate_photos,
            drop_last=shuffle and len(self.train_set) >= hp.batch_size,
            persistent_workers=hp.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        batch = self.val_batch()
        return DataLoader(
            [t for t in batch], batch_size=self.hparams.batch_size, collate_fn=collate_photos, num_workers=0
        )
