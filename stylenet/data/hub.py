"""Photos streamed from the Hugging Face hub (needs a network; nothing is downloaded whole)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import IterableDataset

from stylenet.data.photos import Photo, is_usable
from stylenet.errors import DataError
from stylenet.imageio import UnreadableImageError, open_rgb, to_rgb


def decode_record(record: dict[str, Any]) -> Image.Image:
    """Decode one row of a hub image dataset whose image column was cast with decode=False."""
    image = record["image"]
    if isinstance(image, Image.Image):  # a hub dataset that decodes for us
        return to_rgb(image)
    return open_rgb(image["bytes"] if image.get("bytes") else image["path"])


def hub_dataset(name: str, split: str, streaming: bool, image_column: str):
    """The hub dataset `name`, with its image column renamed to ``image`` and left encoded."""
    import datasets

    try:
        dataset = datasets.load_dataset(name, split=split, streaming=streaming)
    except Exception as error:  # offline, unknown name, bad split: all stop the run the same way
        raise DataError(f"data.name={name} split={split}: cannot open on the Hugging Face hub ({error})") from error
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    return dataset.cast_column("image", datasets.Image(decode=False))


def _byte_length(record: dict[str, Any]) -> int | None:
    image = record["image"]
    return len(image["bytes"]) if isinstance(image, dict) and image.get("bytes") else None


def record_key(record: dict[str, Any]) -> tuple[int | None, str]:
    """Identifies an undecoded record by its bytes (or path), whichever shard or worker reads it.

    The byte length comes first so that a stream can pass over records of other lengths without
    hashing them (`StreamedPhotos`).
    """
    image = record["image"]
    length = _byte_length(record)
    if length is not None:
        return length, hashlib.sha1(image["bytes"]).hexdigest()
    return None, str(image["path"] if isinstance(image, dict) else image)


class StreamedPhotos(IterableDataset):
    """Usable photos from a streamed `datasets.IterableDataset`, shuffled afresh on every pass.

    The stream repeats (`passes=None`) so that every rank of a DDP run takes the same number of
    steps: ranks hold unequal parts of a stream, and one that ran out first would leave the
    others waiting in a gradient all-reduce. Training is measured in steps (`trainer.max_steps`).

    Each pass is shuffled with `shuffle(seed, buffer_size)` and `set_epoch(pass)`, then split
    by node (`split_dataset_by_node`, once `rank`/`world` are known); `datasets` itself splits a
    node's shards across DataLoader workers. Records whose key is in `exclude` (the held-out
    validation photos) are left out; unusable ones are passed over and counted.
    """

    def __init__(
        self,
        dataset,
        transform: Callable[[Image.Image], torch.Tensor],
        min_size: int,
        seed: int,
        buffer_size: int,
        exclude: frozenset[tuple[int | None, str]] = frozenset(),
    ):
        super().__init__()
        self.dataset = dataset
        self.transform = transform
        self.min_size = min_size
        self.seed, self.buffer_size = seed, buffer_size
        self.exclude = exclude
        self._excluded_lengths = {length for length, _ in exclude}
        self.rank, self.world = 0, 1
        self.passes: int | None = None  # None: repeat for ever

    def _pass(self, index: int):
        from datasets.distributed import split_dataset_by_node

        # A fresh shuffled copy per pass: set_epoch writes to memory that DataLoader workers share.
        stream = self.dataset.shuffle(seed=self.seed, buffer_size=self.buffer_size)
        if self.world > 1:
            stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world)
        stream.set_epoch(index)
        return stream

    def __iter__(self) -> Iterator[Photo]:
        skipped = 0
        index = 0
        while self.passes is None or index < self.passes:
            records = usable = 0
            for record in self._pass(index):
                # Held-out records only: a record of another byte length cannot be one, and is not hashed.
                if _byte_length(record) in self._excluded_lengths and record_key(record) in self.exclude:
                    continue
                records += 1
                try:
                    image = decode_record(record)
                except UnreadableImageError:
                    skipped += 1
                    continue
                if not is_usable(image, self.min_size):
                    skipped += 1
                    continue
                usable += 1
                yield self.transform(image), skipped
                skipped = 0
            if records == 0:
                return  # this worker holds no shard of the stream: the others feed the steps
            if usable == 0:
                raise DataError(f"none of the {records} streamed records of this part of the dataset is usable")
            index += 1
