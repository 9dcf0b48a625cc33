"""The inference API, exports and the `stylenet` command, on small untrained networks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylenet import load_model
from stylenet.checkpoint import CheckpointError, save_inference_checkpoint
from stylenet.cli import COMPILE_MIN_IMAGES, _parser, main, speed_choices
from stylenet.errors import ConfigError
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.export import export
from stylenet.networks.transformer import TransformerNet

METADATA = {"style": {"name": "tiny", "image": "tiny.jpg", "size": 64}, "steps": 7, "val": {"val/total_loss": 1.5}}
SIZES = [(33, 47), (64, 64), (8, 9), (100, 31)]


def _network() -> TransformerNet:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1)
    with torch.no_grad():  # an untrained net is nearly constant; spread its weights to make outputs differ
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return network.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same network as .pt, Lightning-style .ckpt, .onnx and .pt2."""
    folder = tmp_path_factory.mktemp("models")
    network = _network()
    pt = save_inference_checkpoint(folder / "tiny.pt", network, METADATA)
    ckpt = folder / "tiny.ckpt"
    torch.save(
        {
            "global_step": 7,
            "state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
            "stylenet": {"model": network.config.to_dict(), "style": METADATA["style"]},
        },
        ckpt,
    )
    return {
        "pt": pt,
        "ckpt": ckpt,
        "onnx": export(network, METADATA, folder / "tiny.onnx", "onnx"),
        "pt2": export(network, METADATA, folder / "tiny.pt2", "pt2"),
    }


@pytest.mark.parametrize("fmt", ["pt", "ckpt", "onnx", "pt2"])
def test_every_format_round_trips_through_the_api(models: dict[str, Path], fmt: str) -> None:
    stylizer = load_model(models[fmt])
    assert stylizer.metadata["style"]["name"] == "tiny"
    assert stylizer.metadata["model"]["width"] == 0.25
    images = torch.rand(2, 3, 33, 47)
    out = stylizer(images)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    picture = stylizer.stylize_image(Image.new("RGB", (45, 31), (200, 30, 60)))
    assert picture.size == (45, 31) and picture.mode == "RGB"


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "ckpt"])
def test_exported_outputs_match_eager(models: dict[str, Path], fmt: str) -> None:
    eager, other = load_model(models["pt"], precision="fp32"), load_model(models[fmt], precision="fp32")
    for height, width in SIZES:
        for batch in (1, 3):
            images = torch.rand(batch, 3, height, width)
            difference = (eager(images) - other(images)).abs().max().item()
            assert difference <= 1e-4, (fmt, height, width, batch, difference)


def test_bf16_stays_close_to_fp32(models: dict[str, Path]) -> None:
    images = torch.rand(1, 3, 64, 64)
    fp32, bf16 = load_model(models["pt"], precision="fp32")(images), load_model(models["pt"], precision="bf16")(images)
    mse = (fp32 - bf16).pow(2).mean().item()
    assert 10 * np.log10(1 / mse) > 30  # PSNR in dB


def test_exported_onnx_carries_its_metadata(models: dict[str, Path]) -> None:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(models["onnx"])).metadata_props}
    assert props["style"] == "tiny" and props["steps"] == "7" and "[0, 1]" in props["stylenet"]


@pytest.mark.parametrize("content", [b"", b"not a model", b"PK\x03\x04 truncated zip"])
@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".onnx", ".pt2"])
def test_a_file_that_is_not_a_model_gives_a_clear_error(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad"):
        load_model(path)


def test_a_pickle_cannot_run_code_when_loaded(tmp_path: Path) -> None:
    class Sneaky:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "sneaky.pt"
    torch.save({"format": "stylenet.inference/1", "payload": Sneaky()}, path)
    with pytest.raises(CheckpointError):
        load_model(path)


# --- the command line ---------------------------------------------------------------------------


def _photo_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "nested").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(root / "b.jpg")
    Image.fromarray(rng.integers(0, 255, (37, 29), dtype=np.uint8)).save(root / "nested" / "grey.png")
    (root / "nested" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_cli_stylises_a_folder_and_reports_the_corrupt_file(models, tmp_path: Path, capsys) -> None:
    photos = _photo_folder(tmp_path / "photos")
    status = main(["stylize", str(models["pt"]), str(photos), "-o", str(tmp_path / "out"), "--batch-size", "2"])
    assert status != 0
    out = tmp_path / "out" / "photos"
    assert (out / "a.png").is_file() and (out / "b.jpg").is_file() and (out / "nested" / "grey.png").is_file()
    assert not (out / "nested" / "corrupt.jpg").exists()
    assert Image.open(out / "nested" / "grey.png").size == (29, 37)
    captured = capsys.readouterr()
    assert "corrupt.jpg" in captured.err
    assert "3 image(s) written" in captured.out and "1 failed" in captured.out


def test_cli_single_image_to_a_named_file_with_size(models, tmp_path: Path) -> None:
    Image.new("RGB", (80, 40), (10, 200, 30)).save(tmp_path / "in.png")
    status = main(
        ["stylize", str(models["onnx"]), str(tmp_path / "in.png"), "-o", str(tmp_path / "x.png"), "--size", "40"]
    )
    assert status == 0 and Image.open(tmp_path / "x.png").size == (40, 20)


def test_cli_refuses_to_overwrite_an_input(models, tmp_path: Path, capsys) -> None:
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    status = main(["stylize", str(models["pt"]), str(tmp_path / "in.png"), "-o", str(tmp_path)])
    assert status == 2 and "overwrite" in capsys.readouterr().err


def test_cli_strength_zero_returns_the_content(models, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    main(["stylize", str(models["pt"]), str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--strength", "0"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), np.asarray(Image.open(tmp_path / "in.png")))


def test_cli_bad_model_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "model.pt").write_text("nope")
    status = main(["stylize", str(tmp_path / "model.pt"), str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "model.pt" in err[0]


def test_cli_export_all_formats_then_stylise_with_them(models, tmp_path: Path) -> None:
    assert main(["export", str(models["pt"]), "--format", "all", "-o", str(tmp_path / "exported")]) == 0
    for suffix in ("onnx", "pt2"):
        assert load_model(tmp_path / "exported" / f"tiny.{suffix}").metadata["steps"] == 7


@pytest.mark.slow
def test_cli_benchmark_prints_frames_per_second(models, capsys, allocator_calls) -> None:
    assert main(["stylize", str(models["pt"]), "--benchmark", "--size", "32", "--batch-size", "1"]) == 0
    assert "frames/s" in capsys.readouterr().out
    assert allocator_calls == [True]  # repeated work: --memory-reuse auto keeps freed memory


def test_cli_webcam_without_opencv_or_camera_is_a_clear_error(models, capsys) -> None:
    status = main(["stylize", str(models["pt"]), "--webcam", "99"])
    err = capsys.readouterr().err
    assert status == 2 and ("opencv" in err.lower() or "camera" in err.lower())


def test_cli_webcam_without_a_camera_is_one_line_without_opencv_s_own_warnings(models, capfd) -> None:
    from skip_policy import needs_extra

    cv2 = pytest.importorskip("cv2", reason=needs_extra("webcam"))
    level = cv2.utils.logging.getLogLevel()
    assert main(["stylize", str(models["pt"]), "--webcam", "99", "--compile", "off"]) == 2
    # OpenCV writes its "[ WARN:0@0.02] ... can't open camera by index" lines to the process's stderr itself.
    assert capfd.readouterr().err.splitlines() == ["error: --webcam 99: no camera could be opened with that index"]
    assert cv2.utils.logging.getLogLevel() == level  # quiet for the opening only


def test_a_camera_opened_first_is_the_one_run(models, monkeypatch, capsys) -> None:
    import sys
    import types

    from stylenet.inference.runner import Settings
    from stylenet.inference.webcam import open_camera, run_webcam

    shown: list[np.ndarray] = []

    class Capture:  # one frame, then the end of the feed
        def __init__(self, index: int):
            self.frames, self.released = [np.zeros((16, 16, 3), np.uint8)], False

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return True

        def read(self):
            return (True, self.frames.pop()) if self.frames else (False, None)

        def release(self) -> None:
            self.released = True

    fake = types.SimpleNamespace(
        VideoCapture=Capture, imshow=lambda t, i: shown.append(i), waitKey=lambda d: 0, destroyAllWindows=lambda: None
    )
    monkeypatch.setitem(sys.modules, "cv2", fake)
    capture = open_camera(0)  # before any model loads, as `stylize --webcam` can
    assert run_webcam(load_model(models["pt"]), capture, Settings()) == 0
    assert len(shown) == 1 and shown[0].shape == (16, 16, 3) and capture.released


def test_cli_no_camera_is_found_before_the_model_loads_or_compiles(tmp_path: Path, capfd) -> None:
    from skip_policy import needs_extra

    pytest.importorskip("cv2", reason=needs_extra("webcam"))
    # The model file does not exist, and compiling is left on auto: the camera must be the first thing said.
    assert main(["stylize", str(tmp_path / "not_loaded.pt"), "--webcam", "99"]) == 2
    assert capfd.readouterr().err.splitlines() == ["error: --webcam 99: no camera could be opened with that index"]


def test_cli_webcam_and_benchmark_together_are_refused(tmp_path: Path, capsys) -> None:
    # --benchmark ran and the camera was never opened, without a word.
    assert main(["stylize", str(tmp_path / "not_loaded.pt"), "--webcam", "0", "--benchmark"]) == 2
    assert capsys.readouterr().err == "error: --webcam and --benchmark are two different runs: give one of them\n"


def test_cli_a_negative_camera_number_is_refused_before_the_model_loads(tmp_path: Path, capsys) -> None:
    # OpenCV reads -1 as "any camera", which crashed the process (SIGSEGV) on a machine without one.
    status = main(["stylize", str(tmp_path / "not_loaded.pt"), "--webcam", "-1"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "--webcam takes a camera number" in err


def test_cli_stylises_a_video_keeping_frames_rate_size_and_audio(models, tmp_path: Path, capsys) -> None:
    from test_video import make_video

    from stylenet.inference.video import probe_video

    source = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=12, audio=True)
    status = main(["stylize", str(models["pt2"]), str(source), "-o", str(tmp_path / "out.mp4"), "--size", "32"])
    assert status == 0
    before, after = probe_video(source), probe_video(tmp_path / "out.mp4")
    assert (after.frames, after.fps, after.width, after.height) == (12, before.fps, 64, 48)
    assert after.has_audio
    assert "12 frame(s) in 1 video(s)" in capsys.readouterr().out


def test_cli_preserve_color_keeps_the_content_chroma(models, tmp_path: Path) -> None:
    from stylenet.inference.postprocess import rgb_to_yiq

    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(60, 200, (32, 40, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    main(["stylize", str(models["pt"]), str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--preserve-color"])

    def chroma(path: Path) -> torch.Tensor:
        array = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        return rgb_to_yiq(array)[:, 1:]  # (1, 2, H, W): I and Q

    assert (chroma(tmp_path / "o.png") - chroma(tmp_path / "in.png")).abs().mean() < 0.03


def test_inference_never_imports_training_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, stylenet, stylenet.cli, stylenet.inference.runner, stylenet.inference.export;"
        "heavy = [m for m in ('pytorch_lightning', 'lightning', 'hydra', 'stylenet.losses', 'stylenet.training')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_turns_odd_image_modes_into_upright_rgb_of_the_same_size(models, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    photos = tmp_path / "odd"
    photos.mkdir()
    colours = rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)
    Image.fromarray(colours).convert("L").save(photos / "grey.png")
    Image.fromarray(colours).convert("RGBA").save(photos / "rgba.png")
    Image.fromarray(colours).convert("CMYK").save(photos / "cmyk.jpg")
    Image.fromarray(colours[..., 0].astype(np.uint16) * 257).save(photos / "sixteen.png")
    rotated = Image.fromarray(colours)
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: stored sideways, shown rotated by 90 degrees
    rotated.save(photos / "exif.jpg", exif=exif)
    assert main(["stylize", str(models["pt"]), str(photos), "-o", str(tmp_path / "out")]) == 0
    for name in ("grey.png", "rgba.png", "cmyk.jpg", "sixteen.png"):
        result = Image.open(tmp_path / "out" / "odd" / name)
        assert result.mode == "RGB" and result.size == (44, 30), name
    assert Image.open(tmp_path / "out" / "odd" / "exif.jpg").size == (30, 44)


def test_cli_tile_matches_untiled_output_with_a_trained_style_network(tmp_path: Path) -> None:
    """Tiles normalised with whole-image statistics agree with one pass over the whole image."""
    from skimage import data

    torch.manual_seed(0)
    network = TransformerNet(width=0.5, num_residual_blocks=2)
    with torch.no_grad():  # instance-norm affine terms far from identity, as in trained models
        for module in network.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
    model = save_inference_checkpoint(tmp_path / "net.pt", network.eval(), METADATA)
    Image.fromarray(data.astronaut()).resize((200, 160)).save(tmp_path / "photo.png")
    main(["stylize", str(model), str(tmp_path / "photo.png"), "-o", str(tmp_path / "whole.png")])
    main(["stylize", str(model), str(tmp_path / "photo.png"), "-o", str(tmp_path / "tiled.png"), "--tile", "96"])
    whole = np.asarray(Image.open(tmp_path / "whole.png"), dtype=np.float64) / 255
    tiled = np.asarray(Image.open(tmp_path / "tiled.png"), dtype=np.float64) / 255
    psnr = 10 * np.log10(1 / np.mean((whole - tiled) ** 2))
    assert psnr > 35, psnr


@pytest.mark.parametrize(
    ("options", "n_images", "has_videos", "expected"),
    [
        ([], 1, False, (False, False)),  # one image: neither pays off
        ([], 0, True, (True, True)),  # a video: both
        ([], COMPILE_MIN_IMAGES, False, (True, True)),
        (["--memory-reuse", "off"], 0, True, (True, False)),
        (["--compile", "on"], 1, False, (True, False)),
        (["--benchmark"], 0, False, (True, True)),
        (["--precision", "int8"], 1, False, (True, False)),  # int8 runs only in the compiled graph
        (["--precision", "int8"], 0, True, (True, True)),
        (["--precision", "int8", "--compile", "off"], 1, False, (False, False)),  # then load_model refuses it
    ],
)
def test_stylize_compiles_and_reuses_memory_for_repeated_work(options, n_images, has_videos, expected):
    args = _parser().parse_args(["stylize", "model.pt", *options])
    assert speed_choices(args, n_images, has_videos) == expected


# --- what the Python API accepts ----------------------------------------------------------------


def test_the_stylizer_takes_numpy_pil_paths_and_returns_the_same_kind(models, tmp_path: Path) -> None:
    stylizer = load_model(models["pt"], precision="fp32")
    array = np.random.default_rng(4).integers(0, 255, (24, 30, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "in.png")
    expected = to_array(stylizer(to_tensor(array).unsqueeze(0))[0])
    from_array = stylizer(array)
    assert isinstance(from_array, np.ndarray) and from_array.dtype == np.uint8
    assert np.array_equal(from_array, expected)
    for picture in (Image.fromarray(array), tmp_path / "in.png", str(tmp_path / "in.png")):
        assert np.array_equal(np.asarray(stylizer(picture)), expected)
        assert np.array_equal(np.asarray(stylizer.stylize_image(picture)), expected)
    single = stylizer(to_tensor(array))  # (3, H, W) in, (3, H, W) out
    assert single.shape == (3, 24, 30) and np.array_equal(to_array(single), expected)


@pytest.mark.parametrize(
    ("images", "error", "says"),
    [
        (torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8), TypeError, "images.float() / 255"),
        (torch.rand(1, 3, 16, 16) * 255, ValueError, "divide 0..255 data by 255"),
        (torch.rand(1, 4, 16, 16), ValueError, "(N, 3, H, W)"),
        (np.zeros((16, 16, 3), dtype=np.float32), ValueError, "uint8 array of shape (H, W, 3)"),
        (np.zeros((16, 16), dtype=np.uint8), ValueError, "uint8 array of shape (H, W, 3)"),
        ([[0.5]], TypeError, "image path, a Pillow image"),
    ],
)
def test_the_stylizer_says_what_to_pass(models, images, error, says) -> None:
    stylizer = load_model(models["pt"], precision="fp32")
    with pytest.raises(error, match=re.escape(says)):
        stylizer(images)


def test_floats_a_rounding_error_outside_0_1_are_accepted(models) -> None:
    images = torch.rand(1, 3, 16, 16) * (1 + 5e-4) - 2e-4
    assert load_model(models["pt"], precision="fp32")(images).shape == images.shape


def test_a_call_over_max_memory_tiles_by_itself_and_matches_the_whole_image(models, capsys) -> None:
    from stylenet.inference.memory import MIN_AUTO_TILE, tiled_bytes

    ramp = torch.linspace(0, 6.28, 1100)
    images = (0.5 + 0.4 * torch.sin(ramp[:, None] + torch.tensor([0.0, 2.0, 4.0])[:, None, None]) * torch.cos(ramp))[
        None
    ]
    whole = load_model(models["pt"], precision="fp32")(images)
    probe = load_model(models["pt"], precision="fp32")
    untiled = probe.activation_bytes_per_pixel() * 1100 * 1100
    smallest = tiled_bytes(probe.activation_bytes_per_pixel(), 1, 1100, 1100, MIN_AUTO_TILE, True)
    tiled = load_model(models["pt"], precision="fp32", max_memory=int((untiled + smallest) / 2))(images)
    assert "px tiles" in capsys.readouterr().err
    assert (tiled - whole).abs().mean() < 0.02  # whole-image statistics: only the seams differ


def test_max_memory_accepts_sizes_and_refuses_nonsense(models) -> None:
    assert load_model(models["pt"], max_memory="512M").max_memory == 512 << 20
    with pytest.raises(ConfigError, match="unit"):
        load_model(models["pt"], max_memory="512")


@pytest.mark.parametrize("value", ["abc", 0, -1, 1.5e9, True, [1]])
def test_a_max_memory_set_after_loading_is_checked_where_it_is_set(models, value) -> None:
    stylizer = load_model(models["pt"], precision="fp32")
    with pytest.raises(ConfigError, match="max_memory"):
        stylizer.max_memory = value
    assert stylizer.max_memory is None  # the refused value was not kept
    stylizer.max_memory = "1G"
    assert stylizer.max_memory == 1 << 30
    assert stylizer(torch.rand(3, 16, 16)).shape == (3, 16, 16)
