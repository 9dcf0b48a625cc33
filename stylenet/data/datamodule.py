"""Training and validation photos for style transfer: `data=demo|folder|hub`."""

from __future__ import annotations

import functools
import logging
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stylenet.data.demo import EPOCH_REPEATS, demo_photos
from stylenet.data.folder import image_folder
from stylenet.data.hub import StreamedPhotos, decode_record, hub_dataset, record_key
from stylenet.data.photos import (
    PhotoDataset,
    as_decoded,
    collate_photos,
    crop_transform,
    decode_once,
    eval_transform,
    is_usable,
    train_transform,
)
from stylenet.errors import ConfigError, DataError
from stylenet.imageio import UnreadableImageError, open_rgb
from stylenet.validation import crop_scale_bounds

log = logging.getLogger(__name__)

SOURCES = ("demo", "folder", "hub")
# The held-out photos of a folder are picked in this fixed order, not by `seed`: runs with
# different seeds are compared on their validation losses, so they must see the same photos.
_VALIDATION_ORDER_SEED = 0


def _first_usable(
    records, order, count: int, min_size: int, decode=decode_record, passed_over: list | None = None
) -> list[tuple[int, Image.Image]]:
    """Up to `count` usable photos in `order`, each with its position in `order`; the unusable records
    met on the way are added to `passed_over` where given."""
    found: list[tuple[int, Image.Image]] = []
    for position, index in enumerate(order):
        if len(found) == count:
            break
        try:
            image = decode(records[index])
        except UnreadableImageError:
            image = None
        if image is not None and is_usable(image, min_size):
            found.append((position, image))
        elif passed_over is not None:
            passed_over.append(records[index])
    return found


def _unusable_before(taken: list[tuple[int, Image.Image]]) -> int:
    """Records passed over before the last of `taken` (position, photo) pairs: the unusable ones."""
    return taken[-1][0] + 1 - len(taken)


def _named(records: list) -> list[str]:
    """The file names of `records` that are files (a hub record has no name a user could look up)."""
    return [str(record) for record in records if isinstance(record, (str, os.PathLike))]


def _listed(names: list[str], shown: int = 5) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


class PhotoDataModule(pl.LightningDataModule):
    """Random square crops of photos for training; fixed centre crops for validation.

    Validation photos come from `val_root` when given, else the first `val_size` usable
    photos are held out: of a fixed shuffle of a folder, of the hub dataset as it is stored.
    Neither depends on `seed`. Unusable files met while choosing them are counted in
    `skipped_at_setup`; those met during training are replaced by usable ones and counted per
    batch (see `collate_photos`). A streamed hub dataset is shuffled through a buffer of
    `shuffle_buffer` records. A folder of fewer than `min_epoch_photos` training photos is
    repeated within an epoch to at least that many; one of at most `cache_photos` training photos
    is decoded and resized once, at setup, and kept in memory (its unusable files are counted in
    `skipped_at_setup`).
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
        crop_scale: Sequence[float] | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        val_size: int = 8,
        min_size: int = 32,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        min_epoch_photos: int = 4096,
        cache_photos: int = 1024,
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
        for key, value in (("min_epoch_photos", min_epoch_photos), ("cache_photos", cache_photos)):
            if value < 0:
                raise ConfigError(f"data.{key}={value}: must be 0 or more")
        if shuffle_buffer < 1:
            raise ConfigError(f"data.shuffle_buffer={shuffle_buffer}: must be at least 1 (records held to shuffle)")
        # A plain tuple, not Hydra's list, in the saved hyperparameters: checkpoints load without pickle.
        self.crop_scale = crop_scale = crop_scale_bounds(crop_scale)
        self.save_hyperparameters()
        self.train_set: Any = None
        self.val_images: list[Image.Image] = []
        self.skipped_at_setup = 0
        self.skipped_files: list[str] = []  # the unusable files among them, by name

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        if hp.source == "demo":
            train, self.val_images = demo_photos()
            self.val_images = self.val_images[: hp.val_size]
            crops = crop_transform(hp.image_size, self.crop_scale)
            self.train_set = PhotoDataset(self._decoded_once(train, as_decoded) * EPOCH_REPEATS, as_decoded, crops, 0)
        elif hp.source == "folder":
            self._setup_folder()
        else:
            self._setup_hub(train_transform(hp.image_size, hp.resize, self.crop_scale))
        if self.skipped_at_setup:
            named = f": {_listed(self.skipped_files)}" if self.skipped_files else ""
            log.warning(
                "skipped %d unusable image(s) (unreadable, or under data.min_size=%d px on a side)%s",
                self.skipped_at_setup,
                self.hparams.min_size,
                named,
            )

    def _setup_folder(self) -> None:
        hp = self.hparams
        records = image_folder(hp.root)
        order = list(range(len(records)))
        random.Random(_VALIDATION_ORDER_SEED).shuffle(order)
        if hp.val_root:
            if Path(hp.val_root).resolve() == Path(hp.root).resolve():
                log.warning(
                    "data.val_root is data.root: the validation photos are trained on too, so the val/ losses "
                    "do not measure photos the model never saw; leave data.val_root out to hold some out"
                )
            val_records = image_folder(hp.val_root, key="data.val_root")
            passed_over: list = []
            val = _first_usable(val_records, range(len(val_records)), hp.val_size, hp.min_size, open_rgb, passed_over)
            if not val:
                raise DataError(f"data.val_root={hp.val_root} holds no usable image")
            if not _first_usable(records, order, 1, hp.min_size, open_rgb):
                raise DataError(f"data.root={hp.root}: none of its {len(records)} files is a usable image")
            train_order = order
        else:
            # Hold out at most half the photos, and find one more to train on, so that a folder
            # of broken files stops here rather than after a run of empty batches.
            wanted = min(hp.val_size, max(1, len(records) // 2))
            if wanted < hp.val_size:
                log.warning(
                    "data.val_size=%d: the folder's %d files give %d to validation (at most half), the rest to "
                    "training; a separate data.val_root keeps them all for training",
                    hp.val_size,
                    len(records),
                    wanted,
                )
            passed_over = []
            usable = _first_usable(records, order, wanted + 1, hp.min_size, open_rgb, passed_over)
            if len(usable) < 2:
                raise DataError(
                    f"data.root={hp.root}: {len(usable)} usable image(s) among {len(records)} files; "
                    "need at least 2 (one to train on, one to validate)"
                )
            val = usable[:-1]
            train_order = order[val[-1][0] + 1 :]
        self.val_images = [image for _, image in val]
        self.skipped_at_setup += _unusable_before(val)
        # Only those before the last validation photo: the rest of the folder's are counted where it trains.
        self.skipped_files += _named(passed_over[: _unusable_before(val)])
        train: list = [records[i] for i in train_order]
        # Training photos are resized to this side before cropping: a large JPEG is decoded near it.
        decode_near = functools.partial(open_rgb, at_least=max(hp.resize or hp.image_size, hp.min_size))
        if len(train) <= hp.cache_photos:
            crops = crop_transform(hp.image_size, self.crop_scale)
            train, decode, transform = self._decoded_once(train, decode_near), as_decoded, crops
        else:
            decode, transform = decode_near, train_transform(hp.image_size, hp.resize, self.crop_scale)
        # A small folder is repeated within an epoch (each time as other random crops): every epoch
        # starts with the loader's workers refilling from nothing, and with two batches an epoch that
        # wait set the pace (38 photos at batch 16 on a GPU: a third of the steps' own speed).
        repeats = max(1, math.ceil(hp.min_epoch_photos / len(train)))
        self.train_set = PhotoDataset(train * repeats, decode, transform, hp.min_size)

    def _decoded_once(self, photos: list, decode) -> list[torch.Tensor]:
        """The usable `photos`, decoded and resized for cropping (`decode_once`), the others counted as skipped.

        Each photo of a small set is cropped many times (every epoch, and repeated within one), so
        this is done once here, not by the loader's workers for every crop; they share the result
        (fork) or get a copy.
        """
        hp = self.hparams
        kept, unusable = decode_once(photos, decode, hp.resize or hp.image_size, hp.min_size)
        self.skipped_at_setup += len(unusable)
        self.skipped_files += _named(unusable)
        if not kept:
            raise DataError(f"none of the {len(photos)} training photos is usable")
        megabytes = sum(photo.numel() for photo in kept) / 2**20
        log.info("decoded and resized %d training photos once: %.0f MB in memory", len(kept), megabytes)
        return kept

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
        if hp.streaming:
            # Left out by key, not by skip(): a skip is split evenly over shards and workers.
            exclude = frozenset(record_key(record) for record in head[:held_out])
            self.train_set = StreamedPhotos(dataset, transform, hp.min_size, hp.seed, hp.shuffle_buffer, exclude)
        else:
            rest = dataset.select(range(held_out, len(dataset)))
            self.train_set = PhotoDataset(rest, decode_record, transform, hp.min_size)

    def val_batch(self, size: int | None = None) -> torch.Tensor:
        """The fixed validation photos as one (V, 3, S, S) tensor; S defaults to data.image_size."""
        transform = eval_transform(size or self.hparams.image_size)
        return torch.stack([transform(image) for image in self.val_images])

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        shuffle = not isinstance(self.train_set, StreamedPhotos)
        if not shuffle and self.trainer is not None:
            # Only here are the ranks known: train() sets data up before the trainer exists.
            self.train_set.rank, self.train_set.world = self.trainer.global_rank, self.trainer.world_size
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
            [(photo, 0) for photo in batch],
            batch_size=self.hparams.batch_size,
            collate_fn=collate_photos,
            num_workers=0,
        )
