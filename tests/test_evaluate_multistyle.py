"""`stylenet evaluate` of a model holding several styles: each style scored on its own loss (offline)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from test_evaluate import LOSS  # the small random-VGG loss both files score with

from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.errors import ConfigError
from stylenet.evaluate import evaluate
from stylenet.evaluate_scoring import _load_photo
from stylenet.inference.model import load_model
from stylenet.losses.perceptual import build_perceptual_loss
from stylenet.networks.style_rows import norm_names
from stylenet.networks.transformer import TransformerNet
from stylenet.styles import load_style_image

SIZE = 32
NAMES = ["starry", "starry_light", "stripes"]


def _styles(stripes: Path) -> list[dict[str, Any]]:
    # starry and starry_light: one painting, two style weights; stripes: another painting and size.
    return [
        {"name": "starry", "image": "starry_night.jpg", "size": 64, "content_weight": 1.0, "style_weight": 10.0}
        | {"tv_weight": 1.0},
        {"name": "starry_light", "image": "starry_night.jpg", "size": 64, "content_weight": 1.0}
        | {"style_weight": 2.5, "tv_weight": 1.0},
        {"name": "stripes", "image": str(stripes), "size": 48, "content_weight": 2.0, "style_weight": 5.0}
        | {"tv_weight": 0.5},
    ]


def _tiny_model(folder: Path, styles: list[dict[str, Any]]) -> Path:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=len(styles)).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in norm_names(network):
            norm = network.get_submodule(name)
            for table, centre in ((norm.weight, 1.0), (norm.bias, 0.0)):
                table.copy_(centre + 0.5 * torch.randn(table.shape, generator=generator))
                table[1] = table[0]  # starry_light: starry's rows, so the two differ only in their loss
    metadata = {"styles": styles, "steps": 1, "loss": LOSS}
    return save_inference_checkpoint(folder / "tiny-styles.pt", network, metadata)


@pytest.fixture(scope="module")
def stripes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pixels = np.full((48, 48, 3), 30, dtype=np.uint8)
    pixels[::4, :, 0] = 250
    path = tmp_path_factory.mktemp("paintings") / "stripes.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, stripes: Path) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("model"), _styles(stripes))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def losses_only(model: Path, photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("losses-only")
    return evaluate(model, photos, out, gatys_steps=0, size=SIZE, vgg_weights="random"), out


def _by_style(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["style"]["name"]: entry for entry in report["styles"]}


def test_every_style_is_a_row_of_its_own(losses_only: tuple[dict[str, Any], Path]) -> None:
    report, out = losses_only
    assert [entry["style"]["name"] for entry in report["styles"]] == NAMES
    assert [s["name"] for s in report["settings"]["styles"]] == NAMES and "style" not in report["settings"]
    assert report["photos"] == ["a.png", "b.png"] and report["skipped_count"] == 0
    for entry in report["styles"]:
        assert [row["photo"] for row in entry["images"]] == ["a.png", "b.png"]
        assert "optimisation" not in entry["mean"] and "ratio_total" not in entry["mean"]
        assert all(math.isfinite(entry["mean"]["model"][k]) for k in ("content_loss", "style_loss", "total_loss"))
    means = [entry["mean"]["model"]["total_loss"] for entry in report["styles"]]
    assert report["mean"]["model"]["total_loss"] == pytest.approx(np.mean(means))
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    markdown = (out / "report.md").read_text()
    summary = markdown.split("## Per style")[1].split("\n## ")[0]
    assert [line.split(" | ")[0] for line in summary.splitlines() if line.startswith("| ")][1:] == [
        *(f"| {name}" for name in NAMES),
        "| **mean**",
    ]
    assert "optim total" not in markdown and "--gatys-steps 0" in markdown
    # each style's section ends with its style layers' errors, the model's only
    for name in NAMES:
        section = markdown.split(f"\n## {name}\n")[1].split("\n## ")[0]
        assert "| style layer | model |\n" in section and "| relu1_1 |" in section
    # the photos' row, then one row of model outputs per style; 2 columns of 32 px, 2 px padding
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (2 * SIZE + 3 * 2, 4 * SIZE + 5 * 2)


def test_each_style_is_scored_on_its_own_painting_and_weights(
    losses_only: tuple[dict[str, Any], Path], model: Path, photos: Path, stripes: Path
) -> None:
    styles = _by_style(losses_only[0])
    # starry_light has starry's rows (the same pictures) and a quarter of its style weight
    starry, light = styles["starry"]["images"][0]["model"], styles["starry_light"]["images"][0]["model"]
    assert light["content_loss"] == pytest.approx(starry["content_loss"])
    assert light["style_loss"] == pytest.approx(starry["style_loss"] / 4)
    assert styles["starry_light"]["loss"]["style_weight"] == 2.5 and styles["stripes"]["loss"]["tv_weight"] == 0.5
    # stripes: its own painting at its own size and weights, through the model in that style
    torch.manual_seed(0)
    config = {k: v for k, v in LOSS.items() if k != "_target_"} | {"content_weight": 2.0}
    loss = build_perceptual_loss(load_style_image(str(stripes), 48), **config | {"style_weight": 5.0, "tv_weight": 0.5})
    stylizer = load_model(model, precision="fp32").with_style("stripes")
    assert stylizer.style == "stripes"
    ours = styles["stripes"]["images"][0]["model"]
    content = _load_photo(photos / "a.png", SIZE)  # the photo as evaluate crops it
    with torch.no_grad():
        expected = loss(stylizer(content), content).as_dict()
    for key in ("content_loss", "style_loss", "tv_loss", "total_loss"):
        assert ours[key] == pytest.approx(float(expected[key]), rel=1e-5), key
    # each style's layers are measured against its own painting: starry_light's are starry's, stripes' differ
    with torch.no_grad():
        _, errors = loss.terms_and_style_errors(stylizer(content), content)
        expected_layers = {k: float(v) for k, v in errors.items()}
    assert ours["style_layers"] == pytest.approx(expected_layers, rel=1e-5)
    assert light["style_layers"] == pytest.approx(starry["style_layers"])
    assert all(ours["style_layers"][k] != pytest.approx(v) for k, v in starry["style_layers"].items())
    for entry in styles.values():
        mean = entry["mean"]["model"]
        assert mean["style_loss"] == pytest.approx(entry["loss"]["style_weight"] * sum(mean["style_layers"].values()))


@pytest.mark.slow  # three optimisations of two photos
def test_optimisation_reference_per_style_and_style_restricts(
    losses_only: tuple[dict[str, Any], Path], model: Path, photos: Path, tmp_path: Path, capsys
) -> None:
    report = evaluate(model, photos, tmp_path / "all", gatys_steps=2, size=SIZE, vgg_weights="random")
    for entry in report["styles"]:
        for row in entry["images"]:
            assert row["optimisation"]["total_loss"] < row["model"]["total_loss"]
            assert row["ratio_total"] > 1 and row["speedup"] > 0
    # model losses do not depend on whether the optimisation ran
    for name, entry in _by_style(report).items():
        assert entry["mean"]["model"]["total_loss"] == pytest.approx(
            _by_style(losses_only[0])[name]["mean"]["model"]["total_loss"]
        )
    with Image.open(tmp_path / "all" / "grid.png") as grid:  # photos, then optimisation and model rows per style
        assert grid.size[1] == 7 * SIZE + 8 * 2
    assert "ratio (model/optim)" in (tmp_path / "all" / "report.md").read_text()

    out = tmp_path / "one"
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--gatys-steps", "2"]
    assert main([*argv, "--size", str(SIZE), "--vgg-weights", "random", "--style", "stripes"]) == 0
    assert "2 photo(s) x 1 styles" in capsys.readouterr().out
    one = json.loads((out / "report.json").read_text())
    assert [entry["style"]["name"] for entry in one["styles"]] == ["stripes"]
    timing = ("seconds", "speedup")
    assert _strip(one["styles"][0], timing) == _strip(json.loads(json.dumps(_by_style(report)["stripes"])), timing)


def _strip(tree: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(tree, dict):
        return {k: _strip(v, keys) for k, v in tree.items() if k not in keys}
    if isinstance(tree, list):
        return [_strip(v, keys) for v in tree]
    return tree


def _refuse_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("work started before the style was checked")

    monkeypatch.setattr("stylenet.evaluate.load_photos", refuse)
    monkeypatch.setattr("stylenet.evaluate_loss.build_perceptual_loss", refuse)


def test_an_unknown_style_is_one_line_before_any_work(
    model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _refuse_work(monkeypatch)
    with pytest.raises(ConfigError, match="--style wave: this model holds starry, starry_light, stripes"):
        evaluate(model, photos, tmp_path / "out", style="wave", vgg_weights="random")
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(tmp_path / "out"), "--style", "wave"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "starry, starry_light, stripes" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_painting_is_one_line_before_any_work(
    tmp_path: Path, photos: Path, stripes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    styles = _styles(stripes)
    styles[2]["image"] = str(tmp_path / "gone.png")
    model = _tiny_model(tmp_path, styles)
    _refuse_work(monkeypatch)
    with pytest.raises(ConfigError, match="gone.png") as refused:
        evaluate(model, photos, tmp_path / "out", vgg_weights="random")
    # Neither a training override nor --style can stand in for a style's own painting.
    assert "style.image=" not in str(refused.value) and "--style" not in str(refused.value)


@pytest.mark.slow  # three optimisations of two photos, once
def test_a_reference_serves_each_style_it_scored(
    model: Path, photos: Path, stripes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = evaluate(model, photos, tmp_path / "full", gatys_steps=2, size=SIZE, vgg_weights="random")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the optimisation ran although the reference held it")

    monkeypatch.setattr("stylenet.evaluate_scoring.optimize", refuse)
    common = {"gatys_steps": 2, "size": SIZE, "vgg_weights": "random", "reference": tmp_path / "full"}
    again = evaluate(model, photos, tmp_path / "again", **common)
    timing = ("seconds", "speedup")
    for name, entry in _by_style(again).items():
        assert _strip(entry, timing) == _strip(json.loads(json.dumps(_by_style(full)[name])), timing)
    # A report of one style serves that style only.
    evaluate(model, photos, tmp_path / "one", style="stripes", **common)
    with pytest.raises(ConfigError, match="it did not score the style 'starry'"):
        evaluate(model, photos, tmp_path / "out", **common | {"reference": tmp_path / "one"})
    assert not (tmp_path / "out").exists()
