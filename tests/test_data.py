"""Training photos: bad files are replaced and counted, every file is used, mistakes are clear errors.

Everything here runs offline on images generated in tmp folders (plus the packaged demo photos
and style painting); the Hugging Face `datasets` cache is pointed at a tmp folder too.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from stylenet.data.datamodule import PhotoDataModule
from stylenet.data.demo import EPOCH_REPEATS
from stylenet.data.folder import image_folder
from stylenet.data.photos import PhotoDataset, collate_photos, crop_transform, eval_transform
from stylenet.errors import ConfigError, DataError
from stylenet.imageio import UnreadableImageError, open_rgb
from stylenet.styles import PACKAGED_STYLES, STYLE_DIR_ENV, find_style_image, load_style_image

IMAGE_SIZE = 32
BATCH_SIZE = 2
VAL_SIZE = 2
MIN_SIZE = 16


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A random-coloured RGB photo; the seed makes each file different, so a mix-up would show."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def truncated_jpeg(path: Path) -> Path:
    """The first half of a valid JPEG: the header reads fine, decoding fails."""
    buffer = io.BytesIO()
    photo(48, 40, seed=99).save(buffer, "JPEG")
    return write(path, buffer.getvalue()[: len(buffer.getvalue()) // 2])


def sixteen_bit(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.full((height, width), 32768, dtype=np.uint16))  # mode I;16


def folder_module(root: Path, **overrides) -> PhotoDataModule:
    settings = dict(
        source="folder",
        root=str(root),
        image_size=IMAGE_SIZE,
        batch_size=BATCH_SIZE,
        val_size=VAL_SIZE,
        min_size=MIN_SIZE,
        num_workers=0,
        min_epoch_photos=0,  # one item per file, so that the tests below can account for each
        cache_photos=0,  # files decoded at each crop: unusable ones are met (and counted) in training
    )
    return PhotoDataModule(**(settings | overrides))


@dataclass
class PhotoTree:
    root: Path
    files: int  # every file under root with an image suffix
    unusable: int  # those that can never be trained on


def make_photo_tree(root: Path) -> PhotoTree:
    """Good photos of different sizes in nested folders named like splits, plus every kind of bad file."""
    good = [
        save(photo(48, 40, 0), root / "train" / "a.jpg"),
        save(photo(40, 48, 1), root / "train" / "b.png"),
        save(photo(64, 40, 2), root / "test" / "c.jpg"),  # "test" and "val" folders must not become splits
        save(photo(40, 40, 3), root / "val" / "d.png"),
        save(photo(50, 60, 4), root / "e.jpg"),
        save(photo(48, 48, 5), root / "photos" / "val2014" / "f.jpg"),
    ]
    converted = [  # odd modes: converted to RGB and used
        save(photo(48, 40, 6).convert("CMYK"), root / "odd" / "cmyk.jpg"),
        save(Image.new("RGBA", (44, 40), (0, 0, 0, 0)), root / "odd" / "rgba.png"),
        save(photo(40, 44, 7).convert("L"), root / "odd" / "grey.png"),
        save(sixteen_bit(48, 40), root / "odd" / "sixteen.png"),
    ]
    unusable = [
        write(root / "broken" / "empty.jpg", b""),
        truncated_jpeg(root / "broken" / "truncated.jpg"),
        write(root / "broken" / "notes.jpg", b"not a photo, just text\n"),
        save(photo(4, 4, 8), root / "small" / "tiny.png"),  # decodes, but under min_size
    ]
    write(root / "README.txt", b"ignored: not an image suffix")
    write(root / "train" / "labels.json", b"{}")
    return PhotoTree(root, files=len(good) + len(converted) + len(unusable), unusable=len(unusable))


@pytest.fixture(scope="module", autouse=True)
def offline_and_private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test here may touch the network, nor leave `datasets` cache files outside tmp."""
    import datasets

    def offline(connect):
        def refuse(self, *args, **kwargs):
            # Local sockets stay open: DataLoader workers hand tensors over through them.
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise OSError("tests must run offline")
            return connect(self, *args, **kwargs)

        return refuse

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        patch.setattr(socket.socket, "connect", offline(socket.socket.connect))
        patch.setattr(socket.socket, "connect_ex", offline(socket.socket.connect_ex))
        yield


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory: pytest.TempPathFactory) -> PhotoTree:
    return make_photo_tree(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def folder_data(photo_tree: PhotoTree) -> PhotoDataModule:
    """Set up once: choosing the validation photos decodes them."""
    datamodule = folder_module(photo_tree.root)
    datamodule.setup("fit")
    return datamodule


# --- PhotoDataset and collate_photos ------------------------------------------------------------


def test_photo_dataset_replaces_unusable_items_with_the_next_usable_one() -> None:
    pictures = {"big": photo(40, 30, 0), "tiny": photo(8, 8, 1), "other": photo(30, 40, 2)}

    def decode(item: str) -> Image.Image:
        if item not in pictures:
            raise UnreadableImageError(f"{item}: not a readable image")
        return pictures[item]

    transform = eval_transform(16)
    dataset = PhotoDataset(["big", "broken", "tiny", "other"], decode, transform, min_size=16)
    assert len(dataset) == 4
    tensor, replaced = dataset[0]
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    assert replaced == 0
    for index in (1, 2):  # undecodable, smaller than min_size: both become "other", counted once
        tensor, replaced = dataset[index]
        assert replaced == 1
        assert torch.equal(tensor, transform(pictures["other"]))
    assert dataset[3][1] == 0


def test_photo_dataset_replacement_wraps_around() -> None:
    dataset = PhotoDataset([photo(20, 20, 0), photo(4, 4, 1)], lambda item: item, eval_transform(16), min_size=16)
    tensor, replaced = dataset[1]
    assert replaced == 1 and tensor.shape == (3, 16, 16)


def test_photo_dataset_of_only_unusable_items_is_a_data_error() -> None:
    dataset = PhotoDataset([photo(4, 4, 0)], lambda item: item, eval_transform(16), min_size=16)
    with pytest.raises(DataError, match="usable"):
        dataset[0]


def test_collate_stacks_photos_and_sums_the_replacements() -> None:
    a, b = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    batch = collate_photos([(a, 1), (b, 2)])
    assert batch["skipped"] == 3
    assert batch["images"].shape == (2, 3, 8, 8)
    assert torch.equal(batch["images"][0], a) and torch.equal(batch["images"][1], b)


def test_photo_dataset_batches_stay_full_through_a_dataloader() -> None:
    # Under DDP an emptied or shortened batch would leave the other ranks waiting: none may occur.
    pictures = [photo(24, 20, 0), None, photo(20, 30, 1), photo(5, 40, 2), None, None]

    def decode(index: int) -> Image.Image:
        if pictures[index] is None:
            raise UnreadableImageError(f"item {index}: not a readable image")
        return pictures[index]

    dataset = PhotoDataset(list(range(len(pictures))), decode, eval_transform(16), min_size=16)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_photos)
    batches = list(loader)
    assert [b["skipped"] for b in batches] == [1, 1, 2]
    assert [len(b["images"]) for b in batches] == [2, 2, 2]


# --- data=folder --------------------------------------------------------------------------------


def test_image_folder_keeps_every_file_in_one_split_without_labels(photo_tree: PhotoTree) -> None:
    # Every image file of every subfolder, "test"/"val" ones too, as one set; other files left out.
    records = image_folder(photo_tree.root)
    assert len(records) == photo_tree.files
    paths = set(records)
    assert len(paths) == photo_tree.files
    assert all(p.is_relative_to(photo_tree.root) and p.suffix != ".txt" for p in paths)


def test_folder_train_batches_are_square_rgb_crops(folder_data: PhotoDataModule) -> None:
    torch.manual_seed(0)
    batches = list(folder_data.train_dataloader())
    assert batches
    for batch in batches:
        images = batch["images"]
        assert images.dtype == torch.float32
        assert images.shape[1:] == (3, IMAGE_SIZE, IMAGE_SIZE)
        assert images.shape[0] == BATCH_SIZE  # unusable photos are replaced, never dropped
        assert images.min() >= 0 and images.max() <= 1


def test_folder_counts_every_unusable_file_once(folder_data: PhotoDataModule, photo_tree: PhotoTree) -> None:
    torch.manual_seed(0)
    trained = skipped = 0
    for batch in folder_data.train_dataloader():
        trained += len(batch["images"])
        skipped += batch["skipped"]
    # With an even train set drop_last drops nothing, so one pass draws every training item once;
    # each unusable one is replaced by a usable photo, so the batches hold one photo per item.
    assert trained == len(folder_data.train_set), "the loader did not visit every training item"
    assert skipped + folder_data.skipped_at_setup == photo_tree.unusable
    # Every file is used (no split guessing): in training, held out, or skipped at setup.
    assert trained + len(folder_data.val_images) + folder_data.skipped_at_setup == photo_tree.files


def test_folder_split_accounts_for_every_file(folder_data: PhotoDataModule, photo_tree: PhotoTree) -> None:
    unusable_in_train = sum(folder_data.train_set.load(i) is None for i in range(len(folder_data.train_set)))
    assert unusable_in_train + folder_data.skipped_at_setup == photo_tree.unusable
    assert len(folder_data.train_set) + len(folder_data.val_images) + folder_data.skipped_at_setup == photo_tree.files


def test_a_small_folder_is_repeated_to_fill_an_epoch(photo_tree: PhotoTree) -> None:
    once = folder_module(photo_tree.root)
    once.setup("fit")
    files = len(once.train_set)
    repeated = folder_module(photo_tree.root, min_epoch_photos=files * 3 - 1)
    repeated.setup("fit")
    # Every training file equally often: three times, the fewest that reach the minimum.
    assert list(repeated.train_set.items) == list(once.train_set.items) * 3
    assert repeated.val_images and len(repeated.val_images) == len(once.val_images)
    big_enough = folder_module(photo_tree.root, min_epoch_photos=files)
    big_enough.setup("fit")
    assert len(big_enough.train_set) == files


@pytest.mark.parametrize("key", ["min_epoch_photos", "cache_photos"])
def test_counts_must_not_be_negative(photo_tree: PhotoTree, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        folder_module(photo_tree.root, **{key: -1})


@pytest.mark.parametrize(
    "value", [[0, 1], [0.5, 0.25], [0.5, 1.5], [0.5], 0.5, ["a", 1], ["0.5", "1"], [True, True], "11"]
)
def test_a_crop_scale_outside_zero_to_one_is_a_config_error(photo_tree: PhotoTree, value: object) -> None:
    with pytest.raises(ConfigError, match=r"data.crop_scale=.*0 < smallest <= largest <= 1"):
        folder_module(photo_tree.root, crop_scale=value)


def test_crop_scale_takes_that_share_of_the_photo_at_the_crop_size() -> None:
    # Each pixel holds its own column index: a crop's columns tell how much of the photo it took.
    torch.manual_seed(0)
    columns = torch.arange(200, dtype=torch.uint8).expand(3, 200, 200).contiguous()
    spans = {}
    for crop_scale in (None, (0.25, 0.25), (1.0, 1.0)):
        crops = [crop_transform(50, crop_scale)(columns) for _ in range(20)]
        assert all(crop.shape == (3, 50, 50) for crop in crops)
        spans[crop_scale] = [round(float(crop.max() - crop.min()) * 255) for crop in crops]
    assert all(span == 49 for span in spans[None])  # 50 of the 200 columns, at their own size
    # A quarter of the area with an aspect ratio from 3:4 to 4:3: 87 to 115 of the 200 columns, less
    # a few at the edges, which the antialiased resize averages with their neighbours.
    assert all(80 <= span <= 116 for span in spans[(0.25, 0.25)])
    assert all(span >= 170 for span in spans[(1.0, 1.0)])  # nearly the whole width, scaled down


def test_demo_training_crops_follow_crop_scale() -> None:
    datamodule = PhotoDataModule(source="demo", image_size=IMAGE_SIZE, resize=64, crop_scale=[0.25, 1.0])
    datamodule.setup("fit")
    sample, _ = datamodule.train_set[0]
    assert sample.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    crops = [step for step in datamodule.train_set.transform.transforms if isinstance(step, v2.RandomResizedCrop)]
    assert len(crops) == 1 and tuple(crops[0].scale) == (0.25, 1.0)


def test_a_small_folder_is_decoded_once_and_its_unusable_files_counted(photo_tree: PhotoTree) -> None:
    per_crop = folder_module(photo_tree.root)
    per_crop.setup("fit")
    cached = folder_module(photo_tree.root, cache_photos=len(per_crop.train_set))
    cached.setup("fit")
    usable = [i for i in range(len(per_crop.train_set)) if per_crop.train_set.load(i) is not None]
    # Only the usable training photos are kept, resized once (shorter side to the crop size), and
    # the others are counted at setup: every file is still accounted for.
    assert len(cached.train_set) == len(usable) < len(per_crop.train_set)
    assert cached.skipped_at_setup == per_crop.skipped_at_setup + len(per_crop.train_set) - len(usable)
    for photo_tensor in cached.train_set.items:
        assert photo_tensor.dtype == torch.uint8 and min(photo_tensor.shape[1:]) == IMAGE_SIZE
    # A crop of a kept photo is the crop the per-crop path makes of the same file, draw for draw.
    for kept, index in enumerate(usable):
        torch.manual_seed(kept)
        expected, _ = per_crop.train_set[index]
        torch.manual_seed(kept)
        image, skipped = cached.train_set[kept]
        assert skipped == 0 and torch.equal(image, expected)


def test_a_large_jpeg_is_decoded_near_the_training_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenet.data import datamodule as module

    root = tmp_path / "photos"
    for index in range(3):
        save(photo(1200, 960, index), root / f"{index}.jpg")
    decoded = []
    original = module.open_rgb

    def spy(source, at_least=None):
        image = original(source, at_least=at_least)
        decoded.append((at_least, image.size))
        return image

    monkeypatch.setattr(module, "open_rgb", spy)
    for cache in (0, 3):  # decoded at each crop, and once at setup
        decoded.clear()
        data = folder_module(root, val_size=1, cache_photos=cache, resize=2 * IMAGE_SIZE)
        data.setup("fit")
        image, _ = data.train_set[0]
        assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        trained = [size for at_least, size in decoded if at_least is not None]
        # An eighth of 1200x960 keeps both sides above 2 x IMAGE_SIZE: not the full 1200x960 decoded.
        assert trained and all(size == (150, 120) for size in trained), decoded


def test_files_skipped_at_setup_are_named(photo_tree: PhotoTree, caplog: pytest.LogCaptureFixture) -> None:
    """A user told "skipped 4 unusable image(s)" must be able to find them: the warning names them."""
    datamodule = folder_module(photo_tree.root, cache_photos=photo_tree.files)  # every file decoded at setup
    with caplog.at_level("WARNING", logger="stylenet.data.datamodule"):
        datamodule.setup("fit")
    assert datamodule.skipped_at_setup == photo_tree.unusable
    named = sorted(Path(name).name for name in datamodule.skipped_files)
    assert named == ["empty.jpg", "notes.jpg", "tiny.png", "truncated.jpg"]
    (warning,) = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    assert f"skipped {photo_tree.unusable} unusable image(s)" in warning and "min_size" in warning
    for name in named:
        assert name in warning


def test_the_list_of_skipped_files_is_cut_short() -> None:
    from stylenet.data.datamodule import _listed

    assert _listed(["a", "b"]) == "a, b"
    assert _listed([str(i) for i in range(8)], shown=3) == "0, 1, 2 and 5 more"


def test_a_folder_over_the_cache_limit_is_decoded_at_each_crop(photo_tree: PhotoTree) -> None:
    data = folder_module(photo_tree.root, cache_photos=1)
    data.setup("fit")
    assert all(isinstance(item, Path) for item in data.train_set.items)


def test_folder_val_batch_is_fixed_centre_crops(folder_data: PhotoDataModule) -> None:
    assert len(folder_data.val_images) == VAL_SIZE
    assert all(image.mode == "RGB" for image in folder_data.val_images)
    batch = folder_data.val_batch()
    assert batch.shape == (VAL_SIZE, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch.dtype == torch.float32
    assert batch.min() >= 0 and batch.max() <= 1
    assert torch.equal(batch, folder_data.val_batch())  # no randomness: runs compare
    assert folder_data.val_batch(48).shape == (VAL_SIZE, 3, 48, 48)


def test_folder_val_dataloader_yields_the_val_batch(folder_data: PhotoDataModule) -> None:
    batches = list(folder_data.val_dataloader())
    images = torch.cat([b["images"] for b in batches])
    assert torch.equal(images, folder_data.val_batch())
    assert sum(b["skipped"] for b in batches) == 0


def test_folder_setup_twice_keeps_the_same_split(folder_data: PhotoDataModule) -> None:
    train_set, val_images = folder_data.train_set, folder_data.val_images
    folder_data.setup("validate")
    assert folder_data.train_set is train_set and folder_data.val_images is val_images


@pytest.mark.parametrize("seed", range(8))
def test_folder_counts_a_bad_file_once_whatever_the_shuffle(tmp_path: Path, seed: int) -> None:
    # Two good photos around one broken file: some seeds put the broken file between the held-out
    # photo and the next usable one, which setup reads past while checking there is one to train on.
    save(photo(40, 40, 0), tmp_path / "a.png")
    write(tmp_path / "b.jpg", b"")
    save(photo(40, 40, 1), tmp_path / "c.png")
    datamodule = folder_module(tmp_path, batch_size=1, val_size=1, seed=seed)
    datamodule.setup()
    skipped = sum(batch["skipped"] for batch in datamodule.train_dataloader())
    assert len(datamodule.val_images) == 1
    assert skipped + datamodule.skipped_at_setup == 1
    assert len(datamodule.train_set) + 1 + datamodule.skipped_at_setup == 3


def test_val_root_gives_the_validation_photos(tmp_path: Path) -> None:
    for i in range(3):
        save(photo(40, 40, i), tmp_path / "train" / f"{i}.png")
    save(photo(40, 40, 9), tmp_path / "held_out" / "v.png")
    write(tmp_path / "held_out" / "broken.jpg", b"")
    datamodule = folder_module(tmp_path / "train", val_root=str(tmp_path / "held_out"))
    datamodule.setup()
    assert len(datamodule.train_set) == 3  # nothing held out of the training folder
    assert len(datamodule.val_images) == 1
    assert datamodule.val_batch().shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_a_val_size_over_half_the_folder_is_said(tmp_path: Path, caplog) -> None:
    for i in range(3):
        save(photo(40, 40, i), tmp_path / f"{i}.png")
    with caplog.at_level("WARNING"):
        datamodule = folder_module(tmp_path, val_size=100)
        datamodule.setup()
    assert len(datamodule.val_images) == 1
    assert "data.val_size=100: the folder's 3 files give 1 to validation (at most half)" in caplog.text


def test_val_root_that_is_the_training_folder_is_said(tmp_path: Path, caplog) -> None:
    for i in range(3):
        save(photo(40, 40, i), tmp_path / "train" / f"{i}.png")
    with caplog.at_level("WARNING"):
        folder_module(tmp_path / "train", val_root=str(tmp_path / "train" / ".")).setup()
    assert "data.val_root is data.root: the validation photos are trained on too" in caplog.text


# --- mistakes that must stop a run with a clear message -----------------------------------------


def test_missing_root_is_a_data_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(DataError) as caught:
        folder_module(missing).setup()
    assert str(missing) in str(caught.value)


def test_folder_of_only_broken_files_is_a_data_error(tmp_path: Path) -> None:
    write(tmp_path / "empty.jpg", b"")
    truncated_jpeg(tmp_path / "half.jpg")
    write(tmp_path / "text.jpg", b"hello")
    save(photo(4, 4, 0), tmp_path / "tiny.png")
    with pytest.raises(DataError, match="usable"):
        folder_module(tmp_path).setup()


def test_folder_with_a_single_usable_photo_is_a_data_error(tmp_path: Path) -> None:
    # One photo cannot be both trained on and validated on.
    save(photo(40, 40, 0), tmp_path / "only.png")
    write(tmp_path / "empty.jpg", b"")
    with pytest.raises(DataError, match="usable"):
        folder_module(tmp_path).setup()


def test_folder_without_image_files_is_a_data_error(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", b"no photos here")
    write(tmp_path / "sub" / "data.csv", b"a,b\n")
    with pytest.raises(DataError, match="no image files") as caught:
        folder_module(tmp_path).setup()
    assert str(tmp_path) in str(caught.value)


def test_val_root_of_only_broken_files_is_a_data_error(tmp_path: Path) -> None:
    for i in range(2):
        save(photo(40, 40, i), tmp_path / "train" / f"{i}.png")
    write(tmp_path / "val" / "empty.jpg", b"")
    with pytest.raises(DataError, match="usable"):
        folder_module(tmp_path / "train", val_root=str(tmp_path / "val")).setup()


def test_a_missing_or_empty_val_root_is_named_as_such(tmp_path: Path) -> None:
    save(photo(40, 40, 0), tmp_path / "train" / "0.png")
    write(tmp_path / "notes" / "readme.txt", b"no photos here")
    for val_root, problem in ((tmp_path / "absent", "is not a folder"), (tmp_path / "notes", "holds no image files")):
        with pytest.raises(DataError) as caught:
            folder_module(tmp_path / "train", val_root=str(val_root)).setup()
        assert str(caught.value).startswith(f"data.val_root={val_root} {problem}")


def test_folder_source_without_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="data.root"):
        PhotoDataModule(source="folder")


def test_unknown_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="coco"):
        PhotoDataModule(source="coco")


def test_hub_source_without_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="data.name"):
        PhotoDataModule(source="hub")


@pytest.mark.parametrize("setting", [{"image_size": 8}, {"batch_size": 0}, {"val_size": 0}])
def test_impossible_sizes_are_config_errors(setting: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        PhotoDataModule(source="demo", **setting)


# --- data=demo ----------------------------------------------------------------------------------


def test_demo_source_works_offline() -> None:
    datamodule = PhotoDataModule(source="demo", image_size=IMAGE_SIZE, batch_size=BATCH_SIZE)
    datamodule.setup("fit")
    assert len(datamodule.train_set) > 0
    assert len(datamodule.train_set) % EPOCH_REPEATS == 0  # each photo repeated, as random crops
    sample, replaced = datamodule.train_set[0]
    assert sample.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and replaced == 0
    assert sample.min() >= 0 and sample.max() <= 1
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["images"].shape == (BATCH_SIZE, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch["skipped"] == 0
    val = datamodule.val_batch(64)
    assert val.shape == (2, 3, 64, 64)
    assert val.min() >= 0 and val.max() <= 1


def test_demo_val_size_limits_the_validation_photos() -> None:
    datamodule = PhotoDataModule(source="demo", image_size=IMAGE_SIZE, val_size=1)
    datamodule.setup()
    assert datamodule.val_batch().shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_demo_photos_script_writes_the_training_or_the_held_out_photos(tmp_path: Path) -> None:
    import subprocess
    import sys

    from stylenet.data.demo import TRAIN_PHOTOS, VALIDATION_PHOTOS, load_photo

    script = [sys.executable, str(Path(__file__).parents[1] / "scripts" / "demo_photos.py")]
    written = {}
    for flag in ("--training", "--held-out"):
        out = tmp_path / flag.strip("-")
        done = subprocess.run([*script, str(out), flag], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        written[flag] = {path.stem for path in out.iterdir()}
    # Scoring a model on the photos it learnt from is only meaningful if they are exactly those.
    assert written["--training"] == set(TRAIN_PHOTOS)
    assert written["--held-out"] == set(VALIDATION_PHOTOS)
    camera = Image.open(tmp_path / "training" / "camera.jpg")
    assert camera.mode == "RGB" and camera.size == load_photo("camera").size  # grayscale, written as the run sees it
    both = subprocess.run([*script, str(tmp_path / "x"), "--training", "--held-out"], capture_output=True, text=True)
    assert both.returncode != 0 and "not allowed with" in both.stderr


def test_demo_photos_script_refuses_a_file_for_its_folder_in_one_line(tmp_path: Path, capsys) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    try:
        import demo_photos
    finally:
        sys.path.pop(0)
    taken = tmp_path / "photos"
    taken.write_text("a file")
    for out in (taken, taken / "inside"):
        with pytest.raises(SystemExit) as stopped:
            demo_photos.main([str(out)])
        last = capsys.readouterr().err.splitlines()[-1]
        assert stopped.value.code == 2
        assert last.endswith(f": error: {out}: {taken} is a file, not a folder: name a folder to write the photos in")
    assert taken.read_text() == "a file"


# --- style images -------------------------------------------------------------------------------


def test_find_style_image_in_style_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a file of that name in the working directory would win
    first, second = tmp_path / "first", tmp_path / "second"
    painting = save(photo(30, 20, 0), second / "my_painting.png")
    first.mkdir()
    monkeypatch.setenv(STYLE_DIR_ENV, f"{first}{os.pathsep}{second}")
    assert find_style_image("my_painting.png") == painting


def test_style_dir_comes_before_packaged_styles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    mine = save(photo(30, 20, 0), tmp_path / "styles" / "starry_night.jpg")
    monkeypatch.setenv(STYLE_DIR_ENV, str(mine.parent))
    assert find_style_image("starry_night.jpg") == mine


def test_find_packaged_style_without_style_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STYLE_DIR_ENV, raising=False)
    found = find_style_image("starry_night.jpg")
    assert found == PACKAGED_STYLES / "starry_night.jpg"
    assert found.is_file()


def test_find_style_image_accepts_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STYLE_DIR_ENV, raising=False)
    painting = save(photo(30, 20, 0), tmp_path / "anywhere" / "p.png")
    assert find_style_image(str(painting)) == painting


def test_a_missing_painting_given_as_a_path_is_not_looked_for_elsewhere(tmp_path: Path) -> None:
    # The advice for a name not found ("or pass style.image=PATH") would tell this user to do what they did.
    with pytest.raises(ConfigError, match=r"^style image .*nosuch\.jpg: no such file$"):
        find_style_image(str(tmp_path / "nosuch.jpg"))
    with pytest.raises(ConfigError, match=r"^style image .*: a folder, not an image$"):
        find_style_image(str(tmp_path))


def test_missing_style_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(STYLE_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        find_style_image("no_such_painting.jpg")
    message = str(caught.value)
    assert STYLE_DIR_ENV in message
    assert "no_such_painting.jpg" in message


def test_load_packaged_style_resized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STYLE_DIR_ENV, raising=False)
    style = load_style_image("starry_night.jpg", 64)
    assert style.dim() == 4 and style.shape[:2] == (1, 3)
    height, width = style.shape[2:]
    assert max(height, width) == 64
    original = open_rgb(PACKAGED_STYLES / "starry_night.jpg")
    assert abs(width / height - original.width / original.height) < 0.05  # aspect ratio kept
    assert style.dtype == torch.float32
    assert style.min() >= 0 and style.max() <= 1
    assert style.max() > style.min()  # a painting, not a blank


def test_load_style_image_without_size_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STYLE_DIR_ENV, str(tmp_path))
    save(Image.new("L", (30, 20), 255), tmp_path / "white.png")
    style = load_style_image("white.png", None)
    assert style.shape == (1, 3, 20, 30)
    assert torch.all(style == 1)


def test_unreadable_style_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STYLE_DIR_ENV, str(tmp_path))
    write(tmp_path / "broken.jpg", b"not a painting")
    with pytest.raises(ConfigError, match="broken.jpg"):
        load_style_image("broken.jpg", 64)


def test_folder_validation_photos_do_not_depend_on_seed(tmp_path: Path) -> None:
    # Runs with different seeds are compared on their validation losses: same photos for all.
    for i in range(12):
        save(photo(40, 40, i), tmp_path / f"{i:02d}.png")
    first, second = folder_module(tmp_path, seed=0), folder_module(tmp_path, seed=1)
    first.setup()
    second.setup()
    assert torch.equal(first.val_batch(), second.val_batch())
