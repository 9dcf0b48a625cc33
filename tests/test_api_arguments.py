"""The Python API's arguments: a value of the wrong kind is one error saying what to pass, never a
silent reading of it (a truthy "off" that compiles, a tile of 0 that means "whole")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from app_helpers import tiny_model

from stylenet.errors import ConfigError
from stylenet.inference.model import load_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "two.pt", styles=("starry", "wave"))


@pytest.mark.parametrize("setting", ["off", "no", 1, None])
def test_compile_takes_a_bool_only(model: Path, setting: object) -> None:
    with pytest.raises(ConfigError, match=f"compile must be True or False, not {setting!r}"):
        load_model(model, precision="fp32", compile=setting)


@pytest.mark.parametrize("choice", [["wave"], ("wave", 1.0), 3])
def test_a_style_of_the_wrong_kind_says_what_to_pass(model: Path, choice: object) -> None:
    stylizer = load_model(model, precision="fp32")
    with pytest.raises(ConfigError, match=r"style must be a name, a blend such as .* or a \{name: weight\} mapping"):
        stylizer.with_style(choice)


def test_an_empty_blend_names_the_models_styles(model: Path) -> None:
    with pytest.raises(ConfigError, match="name at least one style; this model holds starry, wave"):
        load_model(model, precision="fp32").with_style({})


@pytest.mark.parametrize("choice", ["wave=0.2,starry", "starry,wave=3"])
def test_a_blend_mixing_weighted_and_bare_names_is_refused(model: Path, choice: str) -> None:
    # "wave=0.2,starry" reads as 0.2 and 0.8; taken as 0.2 and 1 it would be 0.17 and 0.83.
    with pytest.raises(ConfigError, match="a weight too, or give none"):
        load_model(model, precision="fp32").with_style(choice)


def test_bare_names_alone_blend_equally(model: Path) -> None:
    assert load_model(model, precision="fp32").with_style("starry,wave").style_weights.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("tile", [0, 8, -3])
def test_a_tile_under_the_smallest_is_refused_not_read_as_whole(model: Path, tile: int) -> None:
    stylizer = load_model(model, precision="fp32")
    with pytest.raises(ValueError, match=f"tile must be at least 16 px \\(or None: never tile\\), not {tile}"):
        stylizer(torch.rand(1, 3, 40, 40), tile=tile)


def test_stylize_image_given_a_tensor_points_to_calling_the_stylizer(model: Path) -> None:
    stylizer = load_model(model, precision="fp32")
    with pytest.raises(TypeError, match=r"call the stylizer itself: stylizer\(images\)") as refused:
        stylizer.stylize_image(torch.rand(3, 32, 32))
    assert "float tensor in [0, 1] (N, 3, H, W)" not in str(refused.value)


def test_a_bad_device_is_named_as_the_api_spells_it(model: Path) -> None:
    with pytest.raises(ConfigError, match=r"^device=gpu: expected auto, cpu, cuda or cuda:N$"):
        load_model(model, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^device=cuda: no CUDA GPU is available here; use device=cpu$"):
            load_model(model, device="cuda")


def test_evaluate_names_a_bad_device_as_typed_before_any_work(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stylenet.cli import main

    out = tmp_path / "out"
    assert main(["evaluate", str(model), "--photos", str(tmp_path / "nowhere"), "-o", str(out), "--device", "gpu"]) == 2
    assert capsys.readouterr().err == "error: --device gpu: expected auto, cpu, cuda or cuda:N\n"
    assert not out.exists()
