"""The hub source on a local folder (`load_dataset` takes a path as a name): every photo once per
pass whatever the workers, shuffled, validation independent of `seed`, unusable photos replaced.

Each photo is one flat colour whose red value is its id, so the id survives resizing and cropping.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_data import offline_and_private_cache, write  # noqa: F401 (a module-wide fixture)

from stylenet.data.datamodule import PhotoDataModule
from stylenet.data.hub import StreamedPhotos
from stylenet.data.photos import PhotoDataset

SHARDS, PER_SHARD = 4, 3
PHOTOS = SHARDS * PER_SHARD
VAL_SIZE = 2
IMAGE_SIZE = 16


def id_png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 20), (10 * i + 5, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def make_id_photos(root: Path, count: int = PHOTOS) -> Path:
    """A folder of PNG files: the ``imagefolder`` builder streams it as one shard."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"p{i:02d}.png").write_bytes(id_png(i))
    return root


def make_id_shards(root: Path) -> Path:
    """SHARDS parquet files of PER_SHARD photos, stored like hub datasets: streamed as SHARDS shards."""
    import datasets

    features = datasets.Features({"image": datasets.Image()})
    for shard in range(SHARDS):
        rows = [{"bytes": id_png(shard * PER_SHARD + i), "path": None} for i in range(PER_SHARD)]
        datasets.Dataset.from_dict({"image": rows}, features=features).to_parquet(root / f"shard-{shard}.parquet")
    return root


def ids(images: torch.Tensor) -> list[int]:
    """The id of each (3, S, S) photo in a (B, 3, S, S) batch."""
    return [(round(float(red) * 255) - 5) // 10 for red in images[:, 0, 0, 0]]


def hub_module(root: Path, **overrides) -> PhotoDataModule:
    settings = dict(
        source="hub", name=str(root), image_size=IMAGE_SIZE, batch_size=2, val_size=VAL_SIZE, min_size=16, seed=0
    )
    datamodule = PhotoDataModule(**(settings | overrides))
    datamodule.setup("fit")
    return datamodule


def read_passes(datamodule: PhotoDataModule, passes: int) -> tuple[list[int], int]:
    """(ids in the order the loader gave them, replacements counted) over `passes` passes of the stream."""
    datamodule.train_set.passes = passes
    seen, skipped = [], 0
    for batch in datamodule.train_dataloader():
        seen += ids(batch["images"])
        skipped += batch["skipped"]
    return seen, skipped


@pytest.fixture(scope="module", autouse=True)
def no_pause_between_passes() -> Iterator[None]:
    """`datasets` waits seconds at the end of each pass over parquet shards (an Arrow thread-shutdown
    workaround): nothing next to a real pass, but most of a test's time here."""
    import datasets

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)
        yield


@pytest.fixture(scope="module")
def id_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_id_shards(tmp_path_factory.mktemp("id_photos"))


@pytest.mark.parametrize("layout", ["shards", "one_shard"])
def test_two_workers_stream_every_photo_once_per_pass(id_photos: Path, tmp_path: Path, layout: str) -> None:
    root = id_photos if layout == "shards" else make_id_photos(tmp_path / "photos", PHOTOS)
    datamodule = hub_module(root, num_workers=2)
    assert isinstance(datamodule.train_set, StreamedPhotos)
    val = ids(datamodule.val_batch())
    seen, _ = read_passes(datamodule, 1)
    assert sorted(seen) == sorted(set(range(PHOTOS)) - set(val)), "each training photo exactly once"
    seen, _ = read_passes(datamodule, 2)
    assert Counter(seen) == {i: 2 for i in range(PHOTOS) if i not in val}


def test_the_stream_is_shuffled_anew_each_pass_and_by_seed(id_photos: Path) -> None:
    datamodule = hub_module(id_photos)
    seen, _ = read_passes(datamodule, 2)
    first, second = seen[: len(seen) // 2], seen[len(seen) // 2 :]
    assert sorted(first) == sorted(second)
    assert first != second, "set_epoch must reshuffle each pass"
    assert first != sorted(first), "the stream must be shuffled"
    other_seed, _ = read_passes(hub_module(id_photos, seed=1), 1)
    assert other_seed != first


def test_the_stream_repeats_so_every_rank_takes_the_same_steps(id_photos: Path) -> None:
    loader = iter(hub_module(id_photos).train_dataloader())
    assert all(len(next(loader)["images"]) == 2 for _ in range(3 * PHOTOS))  # well past one pass


@pytest.mark.parametrize("streaming", [True, False])
def test_hub_validation_photos_do_not_depend_on_seed(id_photos: Path, streaming: bool) -> None:
    first = hub_module(id_photos, seed=0, streaming=streaming)
    second = hub_module(id_photos, seed=1, streaming=streaming)
    assert torch.equal(first.val_batch(), second.val_batch())
    assert len(ids(first.val_batch())) == VAL_SIZE


def test_streaming_false_reads_a_shuffled_map_style_set(id_photos: Path) -> None:
    datamodule = hub_module(id_photos, streaming=False, num_workers=2)
    assert isinstance(datamodule.train_set, PhotoDataset)  # Lightning gives it a DistributedSampler under DDP
    val = ids(datamodule.val_batch())
    torch.manual_seed(0)
    seen = [i for batch in datamodule.train_dataloader() for i in ids(batch["images"])]
    assert sorted(seen) == sorted(set(range(PHOTOS)) - set(val))
    assert seen != sorted(seen)


def test_streamed_unusable_photos_are_replaced_and_counted(tmp_path: Path) -> None:
    root = make_id_photos(tmp_path / "photos", 6)
    write(root / "p02_empty.png", b"")
    Image.new("RGB", (4, 4)).save(root / "p04_tiny.png")
    datamodule = hub_module(root)
    val = ids(datamodule.val_batch())
    assert datamodule.skipped_at_setup == 0
    datamodule.train_set.passes = 3
    batches = list(datamodule.train_dataloader())
    assert all(len(batch["images"]) == 2 for batch in batches), "batches stay full"
    assert Counter(i for batch in batches for i in ids(batch["images"])) == {i: 3 for i in range(6) if i not in val}
    # Two unusable records per pass; those after a pass's last usable photo are counted in the next pass.
    assert 2 * 2 <= sum(batch["skipped"] for batch in batches) <= 2 * 3


def test_shuffle_buffer_below_one_is_a_config_error() -> None:
    from stylenet.errors import ConfigError

    with pytest.raises(ConfigError, match="shuffle_buffer"):
        PhotoDataModule(source="hub", name="anything", shuffle_buffer=0)


def test_a_stream_hashes_only_records_as_long_as_a_held_out_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import datasets

    from stylenet.data import hub

    short, long = id_png(1), id_png(2) + b"\0" * 64  # PNG readers ignore bytes after the end chunk
    rows = [{"bytes": short, "path": None}, {"bytes": long, "path": None}] * 3
    stream = datasets.Dataset.from_dict({"image": rows}).to_iterable_dataset()
    hashed: list[int] = []
    sha1 = hashlib.sha1
    monkeypatch.setattr(hub.hashlib, "sha1", lambda data: hashed.append(len(data)) or sha1(data))
    held_out = hub.record_key({"image": {"bytes": long, "path": None}})
    hashed.clear()
    photos = StreamedPhotos(stream, lambda image: image, 1, seed=0, buffer_size=4, exclude=frozenset({held_out}))
    photos.passes = 1
    assert len(list(photos)) == 3  # the three short records; the long ones are held out
    assert hashed == [len(long)] * 3
