"""Every mistake and hostile input `stylenet stylize` meets gets one line, before any work, and no crash."""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skip_policy import needs_extra
from test_stylizer_inputs import released_if_opened

from stylenet import load_model
from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.imageio import UnreadableImageError, image_size
from stylenet.inference import memory, runner
from stylenet.inference.export import export
from stylenet.inference.runner import Settings, plan_memory
from stylenet.networks.transformer import TransformerNet

QUICKSTART = Path(__file__).parent / "data" / "quickstart_starry.pt"
GB = 1 << 30


def solid_png(path: Path, width: int, height: int, value: int = 128) -> Path:
    """A plain greyscale PNG of any size in a few hundred KB, written row by row so it never exists decoded."""
    row = b"\x00" + bytes([value]) * width  # filter type 0, then the pixels
    packer = zlib.compressobj(1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    metadata = {"style": {"name": "tiny", "image": "tiny.jpg", "size": 64}, "steps": 1}
    return {
        "pt": save_inference_checkpoint(folder / "tiny.pt", network, metadata),
        "onnx": export(network, metadata, folder / "tiny.onnx", "onnx"),
    }


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 45, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


@pytest.fixture
def machine_of_24_gb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 24 * GB)


def _messages(err: str) -> list[str]:
    """stderr without the progress bar's lines."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("stylizing")]


def _one_line(capsys) -> str:
    err = _messages(capsys.readouterr().err)
    assert len(err) == 1, err
    return err[0]


# --- arguments, checked before the model loads --------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--size", "0", "--size"),
        ("--size", "-5", "--size"),
        ("--scale", "0", "--scale"),
        ("--scale", "-1", "--scale"),
        ("--scale", "nan", "--scale"),
        ("--tile", "3", "at least 16"),
        ("--max-memory", "8", "unit"),
        ("--max-memory", "lots", "unit"),
    ],
)
def test_bad_values_are_one_line_before_the_model_loads(photo: Path, tmp_path: Path, capsys, option, value, says):
    # The model file does not exist: an error about it would mean the model was reached first.
    status = main(["stylize", str(tmp_path / "absent.pt"), str(photo), option, value])
    line = _one_line(capsys)
    assert status == 2 and says in line and "absent.pt" not in line


def test_an_output_name_that_is_not_an_image_creates_nothing(models, photo: Path, tmp_path: Path, capsys) -> None:
    status = main(["stylize", str(models["pt"]), str(photo), "-o", str(tmp_path / "out" / "x.txt")])
    assert status == 2 and ".txt" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_one_output_file_for_two_inputs_creates_nothing(models, photo: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.png"
    Image.new("RGB", (20, 20)).save(other)
    status = main(["stylize", str(models["pt"]), str(photo), str(other), "-o", str(tmp_path / "out" / "multi.jpg")])
    assert status == 2 and "multi.jpg" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_an_image_cannot_be_written_as_a_video(models, photo: Path, tmp_path: Path, capsys) -> None:
    status = main(["stylize", str(models["pt"]), str(photo), "-o", str(tmp_path / "x.mp4")])
    assert status == 2 and "an image" in _one_line(capsys)


def test_the_closing_line_says_where_files_went(models, photo: Path, tmp_path: Path, capsys) -> None:
    assert main(["stylize", str(models["pt"]), str(photo), "-o", str(tmp_path / "out")]) == 0
    assert f"output in {tmp_path / 'out' / 'photo.png'}" in capsys.readouterr().out
    assert (tmp_path / "out" / "photo.png").is_file()


def test_a_folder_with_no_image_is_a_failure(models, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    status = main(["stylize", str(models["pt"]), str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 1 and "no image or video" in captured.err and "nothing written" in captured.out


def test_a_run_where_every_image_fails_is_a_failure(models, tmp_path: Path, capsys) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    status = main(["stylize", str(models["pt"]), str(tmp_path / "broken.png"), "-o", str(tmp_path / "out")])
    assert status == 1 and "broken.png" in _one_line(capsys)


def test_help_shows_defaults_and_what_omitting_size_means(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: stylized/" in text and "default: each image at its own size" in text
    assert "default: half the available RAM" in text and "default: None" not in text
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "(default: all)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: True" not in text and "default: False" not in text  # flags have no value to show


# --- huge and hostile images --------------------------------------------------------------------


def test_a_decompression_bomb_is_one_line_and_the_other_inputs_still_run(models, photo, tmp_path, capsys) -> None:
    bomb = solid_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 2_000_000
    status = main(["stylize", str(models["pt"]), str(bomb), str(photo), "-o", str(tmp_path / "out")])
    captured = capsys.readouterr()
    lines = _messages(captured.err)
    assert status == 1 and len(lines) == 1 and "bomb.png" in lines[0] and "too many pixels" in lines[0]
    assert (tmp_path / "out" / "photo.png").is_file()
    assert "1 image(s) written" in captured.out and "1 failed" in captured.out


def test_image_size_reads_the_header_only(tmp_path: Path) -> None:
    assert image_size(solid_png(tmp_path / "big.png", 12000, 12000)) == (12000, 12000)
    with pytest.raises(UnreadableImageError, match="too many pixels"):
        image_size(solid_png(tmp_path / "bomb.png", 20000, 20000))


def test_a_12000_px_png_on_a_24_gb_machine_is_tiled_within_half_its_memory(machine_of_24_gb) -> None:
    stylizer = load_model(QUICKSTART)
    plan = plan_memory(stylizer, (12000, 12000), (12000, 12000), Settings(), "big.png")
    assert plan.tile is not None and plan.batch == 1
    pixels = memory.image_bytes(12000 * 12000, 12000 * 12000)
    network = memory.tiled_bytes(stylizer.activation_bytes_per_pixel(), 1, 12000, 12000, plan.tile, True)
    assert pixels + network <= 12 * GB


def test_scale_100_is_refused_in_one_line_without_allocating(models, tmp_path, capsys, machine_of_24_gb) -> None:
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (451, 300), (90, 120, 200)).save(source)
    status = main(["stylize", str(models["pt"]), str(source), "--scale", "100", "-o", str(tmp_path / "out")])
    line = _one_line(capsys)
    assert status == 1 and "45100x30000" in line and "--max-memory" in line
    assert not (tmp_path / "out").exists()


def test_an_image_too_large_even_for_tiles_is_refused_before_decoding(models, photo, tmp_path, capsys) -> None:
    big = solid_png(tmp_path / "big.png", 12000, 12000)
    status = main(["stylize", str(models["pt"]), str(big), str(photo), "--max-memory", "2G", "-o", str(tmp_path / "o")])
    captured = capsys.readouterr()
    lines = _messages(captured.err)
    assert status == 1 and len(lines) == 1 and "big.png (12000x12000 px)" in lines[0] and "2.0 GB" in lines[0]
    assert (tmp_path / "o" / "photo.png").is_file() and not (tmp_path / "o" / "big.png").exists()


def test_an_image_over_the_limit_is_tiled_automatically_and_says_so(models, tmp_path: Path, capsys) -> None:
    source = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(source)
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert main(["stylize", str(models["onnx"]), str(source), "-o", str(whole)]) == 0
    assert "tiles" not in capsys.readouterr().err
    assert main(["stylize", str(models["onnx"]), str(source), "-o", str(tiled), "--max-memory", "12M"]) == 0
    note = _one_line(capsys)
    assert "wide.png (300x200 px)" in note and "px tiles" in note
    assert "over the 12.0 MB allowed" in note  # the whole --max-memory, not what the pixels leave of it
    assert Image.open(tiled).size == (300, 200)
    # Per-tile normalisation shifts tones a little, but the picture is the same one.
    difference = np.abs(np.asarray(Image.open(tiled), float) - np.asarray(Image.open(whole), float)).mean()
    assert difference < 40


def test_a_chosen_tile_that_cannot_fit_the_limit_is_refused_and_a_smaller_one_runs(models, tmp_path: Path, capsys):
    source = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(source)
    out = tmp_path / "out.png"
    # 12 MB holds tiles of this image (the test above) but not one 300 px tile: the whole image at once.
    status = main(["stylize", str(models["onnx"]), str(source), "-o", str(out), "--max-memory", "12M", "--tile", "300"])
    # (An exported model's tiles are normalised each on its own, which a note says first.)
    *notes, line = _messages(capsys.readouterr().err)
    assert [note.startswith("note: --tile with a onnxruntime model") for note in notes] == [True]
    assert status == 1 and "wide.png (300x200 px)" in line and "untiled, over the 12.0 MB allowed" in line
    assert "smaller --tile" in line and not out.exists()
    assert (
        main(["stylize", str(models["onnx"]), str(source), "-o", str(out), "--max-memory", "12M", "--tile", "64"]) == 0
    )
    assert Image.open(out).size == (300, 200)


def test_a_video_whose_frames_cannot_fit_is_one_line_and_counted(models, tmp_path: Path, capsys) -> None:
    pytest.importorskip("av", reason=needs_extra("video"))
    from test_video import make_video

    source = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=3)
    out = str(tmp_path / "o.mp4")
    status = main(["stylize", str(models["pt"]), str(source), "-o", out, "--max-memory", "64K", "--compile", "off"])
    assert status == 1 and "clip.mp4 (64x48 px)" in _one_line(capsys)
    assert not (tmp_path / "o.mp4").exists()


def test_two_inputs_that_would_write_one_output_are_refused_before_any_work(models, tmp_path: Path, capsys) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (20, 20), (10, 20, 30)).save(tmp_path / folder / "x.png")
    out = tmp_path / "out"
    status = main(
        ["stylize", str(models["pt"]), str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "-o", str(out)]
    )
    line = _one_line(capsys)
    assert status == 2 and "would both be written to" in line and not out.exists()
    # The same input named twice is not a clash: it is stylized once.
    assert (
        main(
            ["stylize", str(models["pt"]), str(tmp_path / "a" / "x.png"), str(tmp_path / "a" / "x.png"), "-o", str(out)]
        )
        == 0
    )
    assert (out / "x.png").is_file()


def test_an_output_that_cannot_be_written_is_one_line_and_the_others_still_go(
    models, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = tmp_path / "f"
    (photos / "sub").mkdir(parents=True)
    Image.new("RGB", (20, 20), (10, 20, 30)).save(photos / "a.png")
    Image.new("RGB", (20, 20), (30, 20, 10)).save(photos / "sub" / "b.png")
    out = tmp_path / "out"
    save = runner._save

    def disk_full_for_b(image: torch.Tensor, target: Path) -> None:  # what planning cannot foresee
        if target.name == "b.png":
            raise OSError(28, "No space left on device")
        save(image, target)

    monkeypatch.setattr(runner, "_save", disk_full_for_b)
    status = main(["stylize", str(models["pt"]), str(photos), "-o", str(out), "--batch-size", "1"])
    line = _one_line(capsys)
    assert status == 1 and "b.png" in line and "cannot write" in line and "No space left on device" in line
    assert (out / "f" / "a.png").is_file()


def test_an_animated_image_is_stylized_from_its_first_frame_and_says_so(models, tmp_path: Path, capsys) -> None:
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((200, 20, 20), (20, 200, 20), (20, 20, 200))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "still.gif")
    out = tmp_path / "out"
    assert (
        main(["stylize", str(models["pt"]), str(tmp_path / "anim.gif"), str(tmp_path / "still.gif"), "-o", str(out)])
        == 0
    )
    assert _messages(capsys.readouterr().err) == [
        f"note: {tmp_path / 'anim.gif'} holds several frames; only the first is stylized"
    ]
    assert (out / "anim.gif").is_file() and (out / "still.gif").is_file()


def test_the_default_memory_limit_is_read_once_per_run(models, tmp_path: Path, monkeypatch, capsys) -> None:
    """Read per image, the free memory would shrink by what memory reuse keeps, and tile later images."""
    reads: list[int] = []
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": reads.append(1) or 24 * GB)
    for name in ("a", "b", "c"):
        Image.new("RGB", (24, 16), (10, 20, 30)).save(tmp_path / f"{name}.png")
    assert main(["stylize", str(models["pt"]), str(tmp_path), "-o", str(tmp_path / "out"), "--batch-size", "1"]) == 0
    assert len(reads) == 1


# --- paths refused before any work, and images too small to stylize --------------------------------

SMALLEST = "the network's smallest input"


def test_an_image_smaller_than_8x8_is_skipped_in_one_line_and_the_others_still_go(models, tmp_path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (3, 3), (200, 10, 10)).save(photos / "a_tiny.png")
    Image.new("RGB", (20, 16), (10, 20, 30)).save(photos / "b.png")
    Image.new("RGB", (8, 8), (10, 20, 30)).save(photos / "c_smallest.png")
    out = tmp_path / "out"
    status = main(["stylize", str(models["pt"]), str(photos), "-o", str(out), "--batch-size", "1"])
    captured = capsys.readouterr()
    lines = _messages(captured.err)
    assert status == 1 and lines == [f"skipped {photos / 'a_tiny.png'}: 3x3 px is smaller than 8x8, {SMALLEST}"]
    assert "2 image(s) written" in captured.out and "1 failed" in captured.out
    assert sorted(p.name for p in (out / "photos").iterdir()) == ["b.png", "c_smallest.png"]


def test_a_video_smaller_than_8x8_is_skipped_in_one_line(models, tmp_path: Path, capsys) -> None:
    pytest.importorskip("av", reason=needs_extra("video"))
    from test_video import make_video

    source = make_video(tmp_path / "clip.mp4", width=6, height=4, frames=2)
    status = main(["stylize", str(models["pt"]), str(source), "-o", str(tmp_path / "o.mp4"), "--compile", "off"])
    assert status == 1 and _one_line(capsys) == f"skipped {source}: 6x4 px is smaller than 8x8, {SMALLEST}"
    assert not (tmp_path / "o.mp4").exists()


def test_an_output_folder_that_is_an_existing_file_is_refused_before_any_work(photo, tmp_path, capsys) -> None:
    other = tmp_path / "other.png"
    Image.new("RGB", (20, 20)).save(other)
    afile = tmp_path / "afile"
    afile.write_text("a file, not a folder")
    # The model file does not exist: an error about it would mean the model was reached first.
    status = main(["stylize", str(tmp_path / "absent.pt"), str(photo), str(other), "-o", str(afile)])
    assert status == 2 and _one_line(capsys).startswith(f"error: -o {afile} is an existing file, not a folder")
    status = main(["stylize", str(tmp_path / "absent.pt"), str(photo), "-o", str(afile / "sub" / "x.png")])
    assert status == 2 and f"{afile} is a file, not a folder" in _one_line(capsys)
    assert afile.read_text() == "a file, not a folder"


@pytest.mark.parametrize("name", ["nonexist.jpg", "missing.mp4"])
def test_a_missing_input_with_one_output_file_is_called_missing(tmp_path: Path, capsys, name: str) -> None:
    missing, out = tmp_path / "in" / name, tmp_path / "out" / f"a{Path(name).suffix}"
    status = main(["stylize", str(tmp_path / "absent.pt"), str(missing), "-o", str(out)])
    assert status == 2 and _one_line(capsys) == f"error: {missing}: no such file or folder"
    assert not out.parent.exists()


def test_a_malformed_argument_is_one_line_naming_it(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["stylize", "starry", "photo.jpg", "--size", "abc"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: stylenet stylize: argument --size: invalid int value: 'abc' (see stylenet stylize --help)"
    ]


# --- pipes, devices and links: named in one line each, counted, never opened ---------------------------

PIPE = "a pipe, not an image or video file; save what comes through it to a file first"


@contextlib.contextmanager
def unusable_input(kind: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(a path of `kind`, the end of its "skipped" line); a pipe lets go of any reader, so a run fails, not hangs."""
    if kind == "device":
        yield Path("/dev/zero"), "a device, not an image or video file"
    elif kind == "fifo":
        os.mkfifo(tmp_path / "in.jpg")
        with released_if_opened(tmp_path / "in.jpg") as opened:
            yield tmp_path / "in.jpg", PIPE
        assert opened == []
    else:  # what bash's <(cat photo.jpg) passes: the read end of a pipe, as /dev/fd/N
        read, write = os.pipe()
        try:
            yield Path(f"/dev/fd/{read}"), PIPE
        finally:
            os.close(read)
            os.close(write)


@pytest.mark.parametrize("kind", ["fifo", "process substitution", "device"])
def test_a_pipe_or_device_is_one_line_counted_as_failed(models, photo: Path, tmp_path: Path, capsys, kind) -> None:
    with unusable_input(kind, tmp_path) as (source, why):
        out = tmp_path / "out.jpg"
        assert main(["stylize", str(models["pt"]), str(source), "-o", str(out)]) == 1
        captured = capsys.readouterr()
        assert _messages(captured.err) == [f"skipped {source}: {why}"]
        assert "nothing written, 1 failed" in captured.out and not out.exists()
        # Beside an image, into a folder: the image still goes.
        assert main(["stylize", str(models["pt"]), str(source), str(photo), "-o", str(tmp_path / "o")]) == 1
        captured = capsys.readouterr()
        assert _messages(captured.err) == [f"skipped {source}: {why}"]
        assert "1 image(s) written" in captured.out and "1 failed" in captured.out
        assert [p.name for p in (tmp_path / "o").iterdir()] == ["photo.png"]


def test_a_folders_linked_subfolders_are_searched_and_unusable_entries_named(models, tmp_path: Path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (20, 16), (10, 20, 30)).save(outside / "r.png")
    Image.new("RGB", (20, 16), (30, 20, 10)).save(tmp_path / "linked.png")
    os.mkfifo(outside / "fifo")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (20, 16), (20, 30, 10)).save(photos / "ok.png")
    (photos / "link.png").symlink_to(tmp_path / "linked.png")
    (photos / "sub").symlink_to(outside, target_is_directory=True)
    (photos / "broken.png").symlink_to("missing")
    (photos / "z.jpg").symlink_to("/dev/zero")
    (photos / "f.png").symlink_to(outside / "fifo")
    os.mkfifo(photos / "realfifo.jpg")
    (photos / "notes").symlink_to("/dev/zero")  # not named as an image: not an input, as a .txt is not
    out = tmp_path / "out"
    with released_if_opened(outside / "fifo") as opened, released_if_opened(photos / "realfifo.jpg") as also:
        status = main(["stylize", str(models["pt"]), str(photos), "-o", str(out), "--batch-size", "1"])
    assert opened == also == []
    captured = capsys.readouterr()
    assert _messages(captured.err) == [
        f"skipped {photos / 'broken.png'}: a broken link, to missing",
        f"skipped {photos / 'f.png'}: {PIPE}",
        f"skipped {photos / 'realfifo.jpg'}: {PIPE}",
        f"skipped {photos / 'z.jpg'}: a device, not an image or video file",
    ]
    assert status == 1 and "3 image(s) written" in captured.out and "4 failed" in captured.out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["photos/link.png", "photos/ok.png", "photos/sub/r.png"]


def test_a_link_loop_in_a_folder_ends(models, tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.new("RGB", (20, 16), (10, 20, 30)).save(photos / "sub" / "a.png")
    (photos / "sub" / "up").symlink_to("..", target_is_directory=True)
    (photos / "self").symlink_to(".", target_is_directory=True)
    out = tmp_path / "out"
    assert main(["stylize", str(models["pt"]), str(photos), "-o", str(out)]) == 0
    assert "1 image(s) written" in capsys.readouterr().out
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.png")] == ["photos/sub/a.png"]


def test_inputs_after_options_are_inputs(models: dict[str, Path], photo: Path, tmp_path: Path, capsys) -> None:
    # argparse stops taking inputs at the first option: `--size 16 photo.png` was "unrecognized arguments".
    second = tmp_path / "second.png"
    Image.open(photo).save(second)
    out = tmp_path / "out"
    assert main(["stylize", str(models["pt"]), str(photo), "--size", "16", str(second), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.png", "second.png"]
    with pytest.raises(SystemExit):  # an unknown option after the inputs is still refused
        main(["stylize", str(models["pt"]), "--size", "16", str(photo), "--bogus"])
    assert "unrecognized arguments: " in capsys.readouterr().err
