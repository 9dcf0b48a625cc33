"""What the stylizer refuses, and how: NaN and infinity, empty batches, image paths with no file, pipes."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stylenet import Stylizer, load_model
from stylenet.checkpoint import save_inference_checkpoint
from stylenet.errors import StylenetError
from stylenet.imageio import UnreadableImageError
from stylenet.networks.transformer import TransformerNet


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    path = save_inference_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", network, {"style": {"name": "t"}})
    return load_model(path, precision="fp32")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (3, 16, 16)])
def test_nan_and_infinity_are_refused(stylizer: Stylizer, value: float, shape: tuple[int, ...]) -> None:
    images = torch.rand(shape)
    images[..., 0, 5, 7] = value  # one pixel is enough
    with pytest.raises(ValueError, match=re.escape("the images hold NaN or infinity")):
        stylizer(images)


def test_an_empty_batch_gives_an_empty_batch(stylizer: Stylizer) -> None:
    out = stylizer(torch.rand(0, 3, 16, 20))
    assert out.shape == (0, 3, 16, 20) and out.dtype == torch.float32
    out = stylizer(torch.rand(0, 3, 16, 20, dtype=torch.float64), tile=8)
    assert out.shape == (0, 3, 16, 20) and out.dtype == torch.float32


@pytest.mark.parametrize("shape", [(0, 3, 4, 20), (1, 3, 0, 16), (3, 16, 0)])
def test_images_with_no_pixels_are_still_too_small(stylizer: Stylizer, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="at least 8x8 pixels"):
        stylizer(torch.rand(shape))


@pytest.mark.parametrize("kind", [str, Path])
def test_a_missing_image_path_is_the_unreadable_image_error_naming_it(
    stylizer: Stylizer, tmp_path: Path, kind: type
) -> None:
    missing = kind(tmp_path / "nowhere.jpg")
    for call in (stylizer, stylizer.stylize_image):
        with pytest.raises(UnreadableImageError, match="nowhere.jpg: no such image file") as raised:
            call(missing)
        assert isinstance(raised.value, StylenetError)  # entry points print it as one line
        assert isinstance(raised.value, FileNotFoundError)  # what callers caught before


@contextlib.contextmanager
def released_if_opened(fifo: Path) -> Iterator[list[bool]]:
    """Lets go of anything that opens `fifo` to read (it then reads an empty pipe), rather than have it wait
    forever for a writer: code that should never open the pipe fails its test where it does, not hangs.
    Yields a list that gets an entry each time a reader was let go."""
    opened: list[bool] = []
    done = threading.Event()

    def release() -> None:
        while not done.wait(0.05):
            try:  # succeeds only while a reader has the pipe open, or waits in open()
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                opened.append(True)
            except OSError:
                continue

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()


def test_a_pipe_path_is_refused_without_being_opened(stylizer: Stylizer, tmp_path: Path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with released_if_opened(fifo) as opened:
        for call in (stylizer, stylizer.stylize_image):
            for path in (fifo, str(fifo)):
                with pytest.raises(UnreadableImageError) as raised:
                    call(path)
                assert str(raised.value) == (f"{fifo}: a pipe, not an image file; pass a file's path or a Pillow image")
    assert opened == []


def test_a_device_path_is_refused_without_being_read(stylizer: Stylizer) -> None:
    with pytest.raises(UnreadableImageError, match=re.escape("/dev/zero: a device, not an image file")):
        stylizer("/dev/zero")
