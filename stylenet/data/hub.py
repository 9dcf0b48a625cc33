"""Photos streamed from the Hugging Face hub (needs a network; nothing is downloaded whole)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from stylenet.data.folder import decode_record
from stylenet.data.photos import is_usable
from stylenet.errors import DataError
from stylenet.imageio import UnreadableImageError


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


class StreamedPhotos(IterableDataset):
    """Decoded, transformed photos from a streamed dataset; unusable ones yield None."""

    def __init__(self, dataset, transform: Callable[[Image.Image], torch.Tensor], min_size: int, rank: int, world: int):
        super().__init__()
        self.dataset = dataset
        self.transform = transform
        self.min_size = min_size
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[torch.Tensor | None]:
        worker = get_worker_info()
        shards = self.world * (worker.num_workers if worker else 1)
        shard = self.rank * (worker.num_workers if worker else 1) + (worker.id if worker else 0)
        for index, record in enumerate(self.dataset):
            if index % shards != shard:  # each rank and worker sees a disjoint slice
                continue
            try:
                image = decode_record(record)
            except UnreadableImageError:
                yield None
                continue
            yield self.transform(image) if is_usable(image, self.min_size) else None
