"""Choosing a style or a blend at inference: `stylenet stylize --style` and `load_model(...).styles`."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skip_policy import needs_extra

from stylenet import load_model
from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.errors import ConfigError
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.postprocess import blend, preserve_color
from stylenet.inference.style_choice import style_weights
from stylenet.networks.style_rows import bake_style
from stylenet.networks.transformer import ConditionalInstanceNorm, TransformerNet

NAMES = ["starry", "wave", "scream"]
FP32 = ["--precision", "fp32", "--compile", "off"]


@pytest.fixture(scope="module")
def network() -> TransformerNet:
    """Three styles whose norm rows differ at random, so every choice gives its own picture."""
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=len(NAMES)).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, ConditionalInstanceNorm):
                module.weight.copy_(1 + 0.5 * torch.randn_like(module.weight))
                module.bias.copy_(0.3 * torch.randn_like(module.bias))
    return net


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, network: TransformerNet) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    styles = [{"name": name, "image": f"{name}.jpg", "size": 64} for name in NAMES]
    torch.manual_seed(1)
    single = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    return {
        "several": save_inference_checkpoint(folder / "three.pt", network, {"styles": styles, "steps": 1}),
        "single": save_inference_checkpoint(folder / "one.pt", single, {"style": styles[0], "steps": 1}),
    }


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 45, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def weights(**given: float) -> torch.Tensor:
    return torch.tensor([given.get(name, 0.0) for name in NAMES]) / sum(given.values())


def eager(network: TransformerNet, image: Path, style: torch.Tensor) -> torch.Tensor:
    """`network(x, style)` of the image at `path`, (1, 3, H, W)."""
    with torch.no_grad():
        return network(to_tensor(Image.open(image).convert("RGB")).unsqueeze(0), style)


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def pixels(images: torch.Tensor) -> np.ndarray:
    return to_array(images[0]).astype(np.int16)


def _messages(err: str) -> list[str]:
    """stderr without the progress bar's lines."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("stylizing")]


# --- the command ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("wave", {"wave": 1.0}), ("scream", {"scream": 1.0}), ("starry=0.7,scream=0.3", {"starry": 0.7, "scream": 0.3})],
)
def test_stylize_with_a_style_or_a_blend_matches_the_network(
    models, network, photo, tmp_path, capsys, choice, expected
):
    out = tmp_path / "out.png"
    assert main(["stylize", str(models["several"]), str(photo), "-o", str(out), "--style", choice, *FP32]) == 0
    assert not [line for line in _messages(capsys.readouterr().err) if line.startswith("note")]
    want = pixels(eager(network, photo, weights(**expected)))
    assert np.abs(read(out) - want).max() <= 1  # 8-bit rounding
    other = pixels(eager(network, photo, weights(starry=1.0)))
    if choice != "starry":  # the choice really changed the picture
        assert np.abs(read(out) - other).mean() > 5


def test_without_style_a_model_of_several_runs_its_first_and_says_how_to_choose(
    models, network, photo, tmp_path, capsys
):
    out = tmp_path / "out.png"
    assert main(["stylize", str(models["several"]), str(photo), "-o", str(out), *FP32]) == 0
    notes = [line for line in _messages(capsys.readouterr().err) if line.startswith("note")]
    assert len(notes) == 1 and all(name in notes[0] for name in NAMES) and "--style" in notes[0]
    assert np.abs(read(out) - pixels(eager(network, photo, weights(starry=1.0)))).max() <= 1


def test_a_blend_takes_preserve_color_and_strength(models, network, photo, tmp_path) -> None:
    out = tmp_path / "out.png"
    options = ["--style", "wave=1,scream=3", "--preserve-color", "--strength", "0.6", *FP32]
    assert main(["stylize", str(models["several"]), str(photo), "-o", str(out), *options]) == 0
    content = to_tensor(Image.open(photo).convert("RGB")).unsqueeze(0)
    stylized = eager(network, photo, weights(wave=1, scream=3))
    want = pixels(blend(content, preserve_color(content, stylized), 0.6))
    assert np.abs(read(out) - want).max() <= 1


def test_a_tiled_run_with_a_style_uses_that_style(models, network, tmp_path) -> None:
    rng = np.random.default_rng(1)
    smooth = np.repeat(np.repeat(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8), 8, 0), 8, 1)  # 96 x 96 px
    Image.fromarray(smooth).save(tmp_path / "big.png")
    out = tmp_path / "tiled.png"
    args = ["stylize", str(models["several"]), str(tmp_path / "big.png"), "-o", str(out), "--tile", "48"]
    assert main([*args, "--style", "scream", *FP32]) == 0
    tiled = read(out)
    # exactly the tiles of a single-style model holding that style
    baked = save_inference_checkpoint(tmp_path / "scream.pt", bake_style(network, weights(scream=1.0)), {"steps": 1})
    reference = tmp_path / "reference.png"
    assert main(["stylize", str(baked), str(tmp_path / "big.png"), "-o", str(reference), "--tile", "48", *FP32]) == 0
    assert np.array_equal(tiled, read(reference))
    chosen = pixels(eager(network, tmp_path / "big.png", weights(scream=1.0)))
    first = pixels(eager(network, tmp_path / "big.png", weights(starry=1.0)))
    # whole-image statistics: only the seams differ from the untiled picture, far less than another style does
    assert np.abs(tiled - chosen).mean() * 5 < np.abs(tiled - first).mean()


def test_a_video_with_a_style_uses_that_style(models, network, tmp_path) -> None:
    pytest.importorskip("av", reason=needs_extra("video"))
    from test_video import decode, make_video

    source = make_video(tmp_path / "clip.mp4", width=32, height=24, frames=3)
    baked = save_inference_checkpoint(tmp_path / "wave.pt", bake_style(network, weights(wave=1.0)), {"steps": 1})
    outputs = {}
    for name, model, choice in (
        ("wave", models["several"], ["--style", "wave"]),
        ("baked", baked, []),
        ("first", models["several"], []),
    ):
        outputs[name] = tmp_path / f"{name}.mp4"
        assert main(["stylize", str(model), str(source), "-o", str(outputs[name]), *choice, *FP32]) == 0
    wave, reference, first = (np.stack(decode(outputs[name])).astype(np.int16) for name in ("wave", "baked", "first"))
    assert wave.shape == (3, 24, 32, 3)
    # the frames a single-style model of that style gives. The baked network rounds differently in the last
    # bits on some CPUs, and the lossy codec turns a few flipped pixel values into a few grey levels over the
    # whole clip, so the check is relative: far nearer the wave model's frames than the first style's.
    near, far = np.abs(wave - reference).mean(), np.abs(wave - first).mean()
    assert far > 10 and near < 0.2 * far


def test_the_webcam_shows_the_chosen_style(models, network, monkeypatch, capsys) -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)  # BGR, as OpenCV gives it
    shown: list[np.ndarray] = []

    class Capture:  # one frame, then the end of the feed
        def __init__(self, index: int):
            self.frames = [frame]

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return True

        def read(self):
            return (True, self.frames.pop()) if self.frames else (False, None)

        def release(self) -> None:
            pass

    fake = types.SimpleNamespace(
        VideoCapture=Capture,
        imshow=lambda title, image: shown.append(image),
        waitKey=lambda delay: 0,
        destroyAllWindows=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "cv2", fake)
    assert main(["stylize", str(models["several"]), "--webcam", "0", "--style", "scream", *FP32]) == 0
    assert len(shown) == 1
    with torch.no_grad():
        want = network(to_tensor(np.ascontiguousarray(frame[..., ::-1])).unsqueeze(0), weights(scream=1.0))
    assert np.abs(shown[0][..., ::-1].astype(np.int16) - pixels(want)).max() <= 1


def test_benchmark_runs_a_chosen_blend(models, capsys) -> None:
    options = ["--benchmark", "--size", "16", "--batch-size", "1", "--style", "starry=1,wave=1", *FP32]
    assert main(["stylize", str(models["several"]), *options]) == 0
    assert "ms/frame" in capsys.readouterr().out


@pytest.mark.slow
def test_a_compiled_run_of_a_blend_matches_the_network(models, network, photo, tmp_path, capsys) -> None:
    out = tmp_path / "out.png"
    options = ["--style", "starry=1,wave=1", "--precision", "fp32", "--compile", "on"]
    assert main(["stylize", str(models["several"]), str(photo), "-o", str(out), *options]) == 0
    assert "compiling" in capsys.readouterr().err
    assert np.abs(read(out) - pixels(eager(network, photo, weights(starry=1, wave=1)))).max() <= 2


@pytest.mark.parametrize(
    ("choice", "says"),
    [
        ("nowhere", "unknown style 'nowhere'"),
        ("starry=0.5,nowhere=0.5", "unknown style 'nowhere'"),
        ("starry=-1,wave=2", "must be a number >= 0"),
        ("starry=0,wave=0", "sum to zero"),
        ("starry=lots", "not a number"),
        ("starry,starry", "named twice"),
        ("starry=", "the weight of 'starry' is missing after '='"),
    ],
)
def test_a_bad_choice_is_one_line_naming_the_styles_and_writes_nothing(models, photo, tmp_path, capsys, choice, says):
    out = tmp_path / "out"
    status = main(["stylize", str(models["several"]), str(photo), "-o", str(out), "--style", choice, *FP32])
    lines = _messages(capsys.readouterr().err)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: --style {choice}: ") and says in lines[0]
    assert ", ".join(NAMES) in lines[0]
    assert not out.exists()


def test_weights_near_the_float_limit_blend_as_their_ratios_do() -> None:
    # Their sum overflows to inf: dividing by it would give every style weight 0 (a black picture).
    huge = style_weights("starry=1e308,wave=1e308", NAMES)
    torch.testing.assert_close(huge, style_weights("starry=1,wave=1", NAMES), rtol=0, atol=0)
    assert huge.sum().item() == pytest.approx(1.0)


SHIPPED = "starry, wave, scream, composition_vii, udnie"


@pytest.mark.parametrize(("model", "says"), [("starry=abc", "not a number ('abc')"), ("starry=", "missing after '='")])
def test_a_bad_choice_as_the_model_argument_is_labelled_with_it(photo, tmp_path, capsys, model, says) -> None:
    status = main(["stylize", model, str(photo), "-o", str(tmp_path / "x.png"), *FP32])
    lines = _messages(capsys.readouterr().err)
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"error: {model}: ") and says in lines[0]
    assert "--style" not in lines[0] and SHIPPED in lines[0]
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", ["stylize", "export", "evaluate"])
@pytest.mark.parametrize(("choice", "says"), [("bogus", "unknown style 'bogus'"), ("starry=", "missing after '='")])
def test_a_shipped_name_beside_a_style_that_is_no_choice_suggests_only_real_ones(
    photo, tmp_path, capsys, command, choice, says
) -> None:
    out = ["-o", str(tmp_path / "out")]
    where = {"stylize": [str(photo), *out], "export": out, "evaluate": ["--photos", str(tmp_path), *out]}
    status = main([command, "wave", *where[command], "--style", choice])
    lines = _messages(capsys.readouterr().err)
    assert status == 2 and len(lines) == 1 and says in lines[0]
    assert f"with style {choice}" not in lines[0] and "paintings --style NAME" in lines[0] and SHIPPED in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_single_style_model_takes_its_own_name_and_refuses_others(models, photo, tmp_path, capsys) -> None:
    plain, named = tmp_path / "plain.png", tmp_path / "named.png"
    assert main(["stylize", str(models["single"]), str(photo), "-o", str(plain), *FP32]) == 0
    assert not [line for line in _messages(capsys.readouterr().err) if line.startswith("note")]
    assert main(["stylize", str(models["single"]), str(photo), "-o", str(named), "--style", "starry", *FP32]) == 0
    assert np.array_equal(read(plain), read(named))
    capsys.readouterr()
    refused = tmp_path / "refused.png"
    status = main(["stylize", str(models["single"]), str(photo), "-o", str(refused), "--style", "wave", *FP32])
    lines = _messages(capsys.readouterr().err)
    assert status == 2 and lines == ["error: --style wave: unknown style 'wave': this model holds starry"]
    assert not refused.exists()


def test_output_files_keep_their_names_whatever_the_style(models, photo, tmp_path) -> None:
    assert main(["stylize", str(models["several"]), str(photo), "-o", str(tmp_path / "out"), "--style", "wave"]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.png"]


def test_help_says_how_to_choose_and_how_to_see_the_names(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--style NAME|NAME=W,..." in text and "starry=0.7,wave=0.3" in text
    assert "without --style notes the model's styles" in text


# --- the Python API -------------------------------------------------------------------------------


def test_the_api_lists_chooses_and_blends_styles(models, network) -> None:
    stylizer = load_model(models["several"], precision="fp32")
    assert stylizer.styles == NAMES and stylizer.style == "starry"
    images = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        expected = {name: network(images, weights(**{name: 1.0})) for name in NAMES}
        mixed = network(images, weights(wave=0.25, scream=0.75))
    assert torch.allclose(stylizer(images), expected["starry"], atol=1e-5)
    for name in NAMES:
        assert torch.allclose(stylizer(images, style=name), expected[name], atol=1e-5)
    assert torch.allclose(stylizer(images, style={"wave": 0.25, "scream": 0.75}), mixed, atol=1e-5)
    assert torch.allclose(stylizer(images, style="wave=1,scream=3"), mixed, atol=1e-5)
    assert (expected["wave"] - expected["scream"]).abs().max() > 0.05  # the styles differ
    # A stylizer keeps running its own choice after others were asked for.
    assert torch.allclose(stylizer(images), expected["starry"], atol=1e-5)


def test_each_choice_is_bound_once(models) -> None:
    stylizer = load_model(models["several"], precision="fp32")
    wave = stylizer.with_style("wave")
    assert wave.style == "wave" and wave.styles == NAMES
    assert stylizer.with_style("wave") is wave and wave.with_style("wave") is wave
    assert wave.with_style("starry") is stylizer and stylizer.with_style("starry") is stylizer
    blend_ = stylizer.with_style({"wave": 0.25, "scream": 0.75})
    assert blend_.style == "wave=0.25,scream=0.75"
    assert stylizer.with_style("wave=1,scream=3") is blend_  # weights are relative: the same blend
    assert stylizer.eager().with_style("wave") is wave


def test_load_model_binds_a_choice_and_refuses_a_bad_one(models, network) -> None:
    chosen = load_model(models["several"], precision="fp32", style="scream")
    assert chosen.style == "scream"
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(chosen(images), network(images, weights(scream=1.0)), atol=1e-5)
    with pytest.raises(ConfigError, match="this model holds starry, wave, scream"):
        load_model(models["several"], style="nowhere")
    single = load_model(models["single"], style="starry")
    assert single.styles == ["starry"] and single.style == "starry" and single.with_style("starry") is single
    with pytest.raises(ConfigError, match="unknown style 'wave'"):
        load_model(models["single"], style="wave")
    with pytest.raises(ConfigError, match="unknown style 'wave'"):
        single.with_style("wave")
