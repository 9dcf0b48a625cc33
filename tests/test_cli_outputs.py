"""Outputs of `stylenet stylize` and `stylenet export` are never silently replaced: an existing one is refused in
one line before any work, unless --overwrite; an export's file name must be its format's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skip_policy import needs_extra

from stylenet import load_model
from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.networks import int8_convs
from stylenet.networks.transformer import TransformerNet


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    metadata = {"style": {"name": "tiny", "image": "tiny.jpg", "size": 64}, "steps": 1}
    return save_inference_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", network, metadata)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("stylizing")]
    assert len(err) == 1, err
    return err[0]


# --- stylize ----------------------------------------------------------------------------------------


def test_an_existing_output_file_is_refused_before_the_model_loads(photos: Path, tmp_path: Path, capsys) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"keep me")
    # The model file does not exist: an error about it would mean the model was reached first.
    status = main(["stylize", str(tmp_path / "absent.pt"), str(photos / "a.png"), "-o", str(victim)])
    line = _one_line(capsys)
    assert status == 2 and line.startswith(f"error: output {victim} already exists") and "--overwrite" in line
    assert victim.read_bytes() == b"keep me"


@pytest.mark.parametrize("kind", ["image", "video", "nested"])
def test_a_file_where_an_inputs_subfolder_goes_is_refused_before_the_model_loads(
    tmp_path: Path, capsys, kind: str
) -> None:
    inputs = tmp_path / "inputs"
    where = {"image": "a.png", "video": "clip.mp4", "nested": "sub/a.png"}[kind]
    (inputs / where).parent.mkdir(parents=True)
    (inputs / where).write_bytes(b"not read: the run stops first")
    out = tmp_path / "out"
    blocked = out / "inputs" / "sub" if kind == "nested" else out / "inputs"
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"keep me")  # a file where the folder's outputs would go
    status = main(["stylize", str(tmp_path / "absent.pt"), str(inputs), "-o", str(out)])
    line = _one_line(capsys)
    assert status == 2 and line == f"error: -o {out}: {blocked} is a file, not a folder; choose another -o"
    assert blocked.read_bytes() == b"keep me"


@pytest.mark.parametrize(("name", "written"), [("photo.dat", "photo.dat.png"), ("IMG_0001", "IMG_0001.png")])
def test_an_image_named_without_an_image_suffix_is_written_as_png(
    model: Path, photos: Path, tmp_path: Path, name: str, written: str
) -> None:
    odd = tmp_path / name
    odd.write_bytes((photos / "a.png").read_bytes())  # a PNG, read by its content
    out = tmp_path / "out"
    assert main(["stylize", str(model), str(odd), str(photos / "b.png"), "-o", str(out), "--precision", "fp32"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([written, "b.png"])
    with Image.open(out / written) as picture:
        assert picture.format == "PNG" and picture.size == (24, 20)


def test_overwrite_replaces_an_existing_output(model: Path, photos: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"old")
    assert main(["stylize", str(model), str(photos / "a.png"), "-o", str(victim), "--overwrite"]) == 0
    assert Image.open(victim).size == (24, 20)
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_second_folder_run_names_the_first_existing_output_and_how_many(
    model: Path, photos: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert main(["stylize", str(model), str(photos), "-o", str(out)]) == 0
    written = {p: p.read_bytes() for p in out.rglob("*.png")}
    capsys.readouterr()
    status = main(["stylize", str(tmp_path / "absent.pt"), str(photos), "-o", str(out)])
    line = _one_line(capsys)
    first = out / "photos" / "a.png"
    assert status == 2 and line.startswith(f"error: output {first} already exists (and 1 more of the 2 outputs)")
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == written
    assert main(["stylize", str(model), str(photos), "-o", str(out), "--overwrite"]) == 0


def test_an_output_over_an_input_is_refused_even_with_overwrite(model: Path, photos: Path, capsys) -> None:
    before = (photos / "a.png").read_bytes()
    status = main(["stylize", str(model), str(photos / "a.png"), "-o", str(photos), "--overwrite"])
    assert status == 2 and "would overwrite an input" in _one_line(capsys)
    assert (photos / "a.png").read_bytes() == before


def test_a_failed_overwrite_leaves_the_old_output(
    model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"old")

    def disk_full(image: Image.Image, path, *args, **kwargs) -> None:
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert main(["stylize", str(model), str(photos / "a.png"), "-o", str(victim), "--overwrite"]) == 1
    assert "No space left on device" in _one_line(capsys)
    assert victim.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["photos", "victim.png"]


@pytest.mark.parametrize("name", ["v1.0", "folder.png"])
def test_a_trailing_slash_makes_the_output_a_folder_whatever_its_name(
    model: Path, photos: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out" / name
    assert main(["stylize", str(model), str(photos / "a.png"), str(photos / "b.png"), "-o", f"{out}/"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    one = tmp_path / "one" / name  # one input, and a name that would otherwise be its output file
    assert main(["stylize", str(model), str(photos / "a.png"), "-o", f"{one}/"]) == 0
    assert one.is_dir() and [p.name for p in one.iterdir()] == ["a.png"]


@pytest.mark.parametrize("out", ["inputs/out", "inputs"])
def test_an_output_folder_within_an_input_folder_is_not_read_back_as_input(
    model: Path, photos: Path, tmp_path: Path, out: str, capsys
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "x.png").write_bytes((photos / "a.png").read_bytes())
    written = tmp_path / out / "inputs" / "x.png"
    assert main(["stylize", str(model), str(inputs), "-o", str(tmp_path / out)]) == 0
    first = written.read_bytes()
    # Again, over the first run's output: the same one input, not that output as a second.
    assert main(["stylize", str(model), str(inputs), "-o", str(tmp_path / out), "--overwrite"]) == 0
    assert "1 image(s) written" in capsys.readouterr().out
    assert written.read_bytes() == first
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == sorted(
        ["photos/a.png", "photos/b.png", "inputs/x.png", f"{out}/inputs/x.png"]
    )


def test_an_existing_video_output_is_refused(model: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("av", reason=needs_extra("video"))
    from test_video import make_video

    source = make_video(tmp_path / "clip.mp4", frames=3)
    victim = tmp_path / "victim.mp4"
    victim.write_bytes(b"keep me")
    status = main(["stylize", str(model), str(source), "-o", str(victim), "--compile", "off"])
    assert status == 2 and "victim.mp4 already exists" in _one_line(capsys)
    assert victim.read_bytes() == b"keep me"


def test_a_folder_of_videos_goes_into_a_new_output_folder(model: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("av", reason=needs_extra("video"))
    from test_video import make_video

    (tmp_path / "clips").mkdir()
    make_video(tmp_path / "clips" / "clip.mp4", frames=3)
    out = tmp_path / "new" / "out"
    assert main(["stylize", str(model), str(tmp_path / "clips"), "-o", str(out), "--compile", "off"]) == 0
    assert "3 frame(s) in 1 video(s)" in capsys.readouterr().out and (out / "clips" / "clip.mp4").is_file()


# --- export -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--format", "onnx", "-o", "x.txt"], "--format onnx writes a .onnx file"),
        (["--format", "pt2", "-o", "x.onnx"], "--format pt2 writes a .pt2 file"),
        (["--format", "pt2", "-o", "x.aoti.pt2"], "--format pt2 writes a .pt2 file"),
        (["--format", "aoti", "-o", "x.pt2"], "--format aoti writes a .aoti.pt2 file"),
        (["-o", "x.onnx"], "--format all writes .onnx and .pt2 files"),
        (["--format", "onnx", "--precision", "int8"], "--precision int8 is for --format aoti"),
        (["--precision", "bf16"], "--precision bf16 is for --format aoti"),
    ],
)
def test_an_export_name_of_the_wrong_kind_is_refused_before_the_model_loads(tmp_path: Path, capsys, options, says):
    options = [str(tmp_path / option) if option.startswith("x.") else option for option in options]
    status = main(["export", str(tmp_path / "absent.pt"), *options])
    line = _one_line(capsys)
    assert status == 2 and says in line and "absent.pt" not in line
    assert list(tmp_path.iterdir()) == []


def test_an_int8_package_where_int8_cannot_run_is_refused_before_the_model_loads(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8_convs, "available", lambda: "this PyTorch has no oneDNN int8 convolutions")
    status = main(["export", str(tmp_path / "absent.pt"), "--format", "aoti", "--precision", "int8"])
    line = _one_line(capsys)
    assert status == 2 and "an int8 package cannot be compiled here: this PyTorch has no oneDNN" in line
    assert "absent.pt" not in line and list(tmp_path.iterdir()) == []


def test_an_existing_export_is_refused_and_kept_unless_overwrite(model: Path, tmp_path: Path, capsys) -> None:
    victim = tmp_path / "victim.pt2"
    victim.write_bytes(b"keep me")
    assert main(["export", str(model), "--format", "pt2", "-o", str(victim)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"error: output {victim} already exists") and "--overwrite" in line
    assert victim.read_bytes() == b"keep me"
    # Into a folder, every format's file is checked before the first is written.
    (tmp_path / "tiny.pt2").write_bytes(b"keep me too")
    assert main(["export", str(model), "-o", str(tmp_path)]) == 2
    assert "tiny.pt2 already exists" in _one_line(capsys) and not (tmp_path / "tiny.onnx").exists()
    assert main(["export", str(model), "--format", "pt2", "-o", str(victim), "--overwrite"]) == 0
    assert load_model(victim).backend == "torch.export"


@pytest.mark.parametrize("name", ["exp.v2", "ex8.onnx"])
def test_an_export_name_with_a_trailing_slash_is_a_folder(model: Path, tmp_path: Path, name: str) -> None:
    assert main(["export", str(model), "--format", "onnx", "-o", f"{tmp_path / name}/"]) == 0
    assert (tmp_path / name).is_dir() and [p.name for p in (tmp_path / name).iterdir()] == ["tiny.onnx"]


def test_an_export_folder_that_is_a_file_is_refused(model: Path, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("a file, not a folder")
    assert main(["export", str(model), "--format", "pt2", "-o", str(afile)]) == 2
    assert f"-o {afile} is an existing file, not a folder" in _one_line(capsys)
    assert afile.read_text() == "a file, not a folder"


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that refuses new files, as a read-only mount or another user's folder does (permission bits
    alone would not stop a test run as root)."""
    from stylenet import atomic_write

    folder = tmp_path / "read_only"
    folder.mkdir()
    create = atomic_write.tempfile.TemporaryFile

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == folder:
            raise PermissionError(13, "Permission denied")
        return create(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic_write.tempfile, "TemporaryFile", refuse)
    return folder


def test_an_unwritable_output_folder_is_refused_before_any_work(read_only: Path, tmp_path: Path, capsys) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (20, 20)).save(photo)
    # The model file does not exist: an error about it would mean the model was reached first.
    for out in (read_only, read_only / "sub", read_only / "photo_out.png"):
        assert main(["stylize", str(tmp_path / "absent.pt"), str(photo), "-o", str(out)]) == 2
        assert _one_line(capsys) == (
            f"error: -o {out}: cannot write in {read_only} (Permission denied); choose another -o"
        )


def test_an_unwritable_export_or_report_folder_is_refused_before_any_work(
    model: Path, photos: Path, read_only: Path, capsys
) -> None:
    assert main(["export", str(model), "--format", "pt2", "-o", str(read_only)]) == 2
    assert _one_line(capsys).startswith(f"error: -o {read_only}: cannot write in {read_only} (Permission denied)")
    assert main(["evaluate", str(model), "--photos", str(photos), "-o", str(read_only / "report")]) == 2
    assert _one_line(capsys).startswith(f"error: -o {read_only / 'report'}: cannot write in {read_only}")
    assert list(read_only.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, whose folders take no new files")
def test_a_folder_that_takes_no_files_is_named_so_not_as_missing(model: Path, capsys) -> None:
    # Creating a file in /proc/1 fails with "No such file or directory", of a folder that plainly exists.
    assert main(["export", str(model), "--format", "pt2", "-o", "/proc/1/"]) == 2
    assert _one_line(capsys) == "error: -o /proc/1: cannot write in /proc/1 (it takes no new files); choose another -o"


def test_an_export_that_fails_to_write_keeps_the_file_it_would_replace(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from stylenet.inference import export

    def disk_full(network, metadata, path, fmt, precision=None):
        Path(path).write_bytes(b"the first half of an export")
        raise OSError(28, "No space left on device")

    victim = tmp_path / "tiny.pt2"
    victim.write_bytes(b"the export before")
    monkeypatch.setattr(export, "export", disk_full)
    assert main(["export", str(model), "--format", "pt2", "-o", str(victim), "--overwrite"]) == 2
    assert _one_line(capsys) == f"error: {victim}: cannot write (No space left on device)"
    assert victim.read_bytes() == b"the export before" and [p.name for p in tmp_path.iterdir()] == ["tiny.pt2"]
