"""Resumes that would train one thing under another's name stop in one line before anything loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import compose_config, tiny_overrides
from PIL import Image

from stylenet.checkpoint import load_inference_checkpoint
from stylenet.errors import ConfigError
from stylenet.styles import find_style_image
from stylenet.train import check_config, train


@pytest.fixture(scope="module")
def starry_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-step run of the default style: its folder holds checkpoints/last.ckpt, kept/starry.pt and a
    painting of another style (other.png)."""
    folder = tmp_path_factory.mktemp("starry")
    train(compose_config([*tiny_overrides(folder), "trainer.max_steps=2"]))
    Image.new("RGB", (64, 48), (200, 40, 30)).save(folder / "other.png")
    return folder


def _refused(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as stopped:
        train(compose_config([*tiny_overrides(tmp_path), *overrides]))
    assert "\n" not in str(stopped.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "kept").exists()


def test_resuming_another_styles_checkpoint_is_refused(starry_run: Path, tmp_path: Path) -> None:
    ckpt = starry_run / "run" / "checkpoints" / "last.ckpt"
    mine = ["style=custom", f"style.image={starry_run / 'other.png'}", "style.name=mine"]
    _refused(
        tmp_path,
        [*mine, f"ckpt_path={ckpt}", "trainer.max_steps=3"],
        f"ckpt_path={ckpt} is a run of the style 'starry', this run trains the style 'mine': to resume it, set "
        f"style=starry; to train 'mine' from its weights, start a new run, without ckpt_path, with init={ckpt}$",
    )
    check_config(compose_config([*tiny_overrides(tmp_path), *mine, f"init={ckpt}", "trainer.max_steps=3"]))


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        (
            {"styles": [{"name": "starry"}, {"name": "wave"}]},
            r"is a run of the styles \['starry', 'wave'\], this run trains the style 'starry': "
            r"to resume it, set styles=\[starry,wave\]$",
        ),
        (  # a style with no config file of its own: resumed as the custom style it was
            {"style": {"name": "mine", "image": "paintings/mine.png"}},
            r"is a run of the style 'mine', this run trains the style 'starry': to resume it, set style=custom "
            r"style.image=paintings/mine.png style.name=mine; to train 'starry' from its weights, start a new run",
        ),
    ],
)
def test_resuming_a_checkpoint_of_other_styles_names_the_settings_it_had(
    tmp_path: Path, recorded: dict, message: str
) -> None:
    ckpt = tmp_path / "last.ckpt"
    torch.save({"global_step": 2, "state_dict": {}, "stylenet": {"model": {}, **recorded}}, ckpt)
    _refused(tmp_path, [f"ckpt_path={ckpt}"], message)


def test_resuming_with_another_painting_under_the_same_name_is_refused(starry_run: Path, tmp_path: Path) -> None:
    ckpt = starry_run / "run" / "checkpoints" / "last.ckpt"
    other = ["style=custom", f"style.image={starry_run / 'other.png'}", "style.name=starry"]
    _refused(
        tmp_path,
        [*other, f"ckpt_path={ckpt}", "trainer.max_steps=3"],
        f"ckpt_path={ckpt} trained 'starry' on the painting starry_night.jpg, this run on .*other.png: to resume "
        f"it, set style.image=starry_night.jpg; to train on from its weights with the new painting, start a new "
        f"run, without ckpt_path, with finetune={ckpt}$",
    )
    check_config(compose_config([*tiny_overrides(tmp_path), *other, f"finetune={ckpt}", "trainer.max_steps=3"]))


def test_the_same_painting_by_another_path_resumes(starry_run: Path, tmp_path: Path) -> None:
    copy = shutil.copy(find_style_image("starry_night.jpg"), tmp_path / "copy.jpg")  # the one the run resolved
    ckpt = starry_run / "run" / "checkpoints" / "last.ckpt"
    same = ["style=custom", f"style.image={copy}", "style.name=starry", f"ckpt_path={ckpt}", "trainer.max_steps=3"]
    check_config(compose_config([*tiny_overrides(tmp_path), *same]))


def test_finetune_and_ckpt_path_together_are_refused(starry_run: Path, tmp_path: Path) -> None:
    ckpt = starry_run / "run" / "checkpoints" / "last.ckpt"
    _refused(
        tmp_path,
        [f"finetune={starry_run / 'kept' / 'starry.pt'}", f"ckpt_path={ckpt}", "trainer.max_steps=3"],
        r"ckpt_path= resumes a run \(a fine-tuning one too, without finetune=\), finetune= starts a new one from "
        r"a model: give one of them$",
    )


def test_a_fine_tuning_run_resumes_from_its_checkpoint_alone_counting_the_models_steps(
    starry_run: Path, tmp_path: Path
) -> None:
    model = starry_run / "kept" / "starry.pt"
    train(compose_config([*tiny_overrides(tmp_path / "a"), f"finetune={model}", "trainer.max_steps=2"]))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    result = train(compose_config([*tiny_overrides(tmp_path / "b"), f"ckpt_path={last}", "trainer.max_steps=3"]))
    _, metadata = load_inference_checkpoint(result["model"])
    assert metadata["steps"] == 2 + 3  # the model's two, and this fine-tuning run's three


def test_a_fine_tuning_run_of_another_network_resumes_with_that_network(starry_run: Path, tmp_path: Path) -> None:
    # Fine-tuning takes the model's network settings, not model.*: a resume with the run's own settings must too.
    wide = train(compose_config([*tiny_overrides(tmp_path / "w"), "model.width=0.5", "trainer.max_steps=1"]))["model"]
    train(compose_config([*tiny_overrides(tmp_path / "a"), f"finetune={wide}", "trainer.max_steps=2"]))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    result = train(compose_config([*tiny_overrides(tmp_path / "b"), f"ckpt_path={last}", "trainer.max_steps=3"]))
    network, metadata = load_inference_checkpoint(result["model"])
    assert network.config.width == 0.5 and metadata["steps"] == 1 + 3
