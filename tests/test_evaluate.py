"""`stylenet evaluate` and `optimize` on a tiny untrained model and a random loss network (offline)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.errors import StylenetError
from stylenet.evaluate import evaluate
from stylenet.evaluate_report import markdown as render_markdown
from stylenet.evaluate_report import steps_to_match_text
from stylenet.evaluate_scoring import _steps_to_match, summary
from stylenet.inference.model import load_model
from stylenet.losses.perceptual import build_perceptual_loss
from stylenet.networks.transformer import TransformerNet
from stylenet.optimize import optimize
from stylenet.styles import load_style_image

LOSS = {
    "_target_": "stylenet.losses.perceptual.build_perceptual_loss",
    "vgg_weights": "random",
    "content_layers": ["relu2_2"],
    "style_layers": ["relu1_1", "relu2_1"],
    "style_layer_weights": None,
    "content_weight": 1.0,
    "style_weight": 10.0,
    "tv_weight": 1.0,
}
SIZE = 32
STEPS = 20


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    metadata = {"style": {"name": "starry", "image": "starry_night.jpg", "size": 64}, "steps": 1, "loss": LOSS}
    return save_inference_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", network, metadata)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:40]
    gradient = np.stack([x * 6, y * 5, (x + y) * 3], axis=-1) % 256
    Image.fromarray(gradient.astype(np.uint8)).save(folder / "a.png")  # 40x48: portrait, gets cropped
    Image.fromarray(rng.integers(0, 256, (36, 50, 3), dtype=np.uint8)).save(folder / "b.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


@pytest.fixture(scope="module")
def report(model: Path, photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("report")
    return evaluate(model, photos, out, gatys_steps=STEPS, size=SIZE, vgg_weights="random"), out


def _numbers(tree: Any, skip: tuple[str, ...] = ()) -> list[float]:
    if isinstance(tree, dict):
        return [v for k, value in tree.items() if k not in skip for v in _numbers(value, skip)]
    if isinstance(tree, list):
        return [v for value in tree for v in _numbers(value, skip)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def test_writes_reports_and_grid(report: tuple[dict[str, Any], Path]) -> None:
    result, out = report
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "grid.png"}
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(result))
    assert [row["photo"] for row in result["images"]] == ["a.png", "b.jpg"]
    assert result["skipped"] == ["broken.jpg"] and result["skipped_count"] == 1
    assert result["settings"]["vgg_weights"] == "random" and not result["settings"]["loss_defaults_used"]
    assert result["settings"]["loss"]["content_layers"] == ["relu2_2"] and "_target_" not in result["settings"]["loss"]
    assert result["lpips"] is None and any("LPIPS" in note for note in result["notes"])
    numbers = _numbers({"images": result["images"], "mean": result["mean"]})
    assert numbers and all(math.isfinite(v) for v in numbers)
    markdown = (out / "report.md").read_text()
    assert "a.png" in markdown and "b.jpg" in markdown and "**mean**" in markdown and "LPIPS" in markdown
    # 3 rows (content, optimisation, model) x 2 columns of 32 px, with make_grid's 2 px padding.
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (2 * SIZE + 3 * 2, 3 * SIZE + 4 * 2)


def test_optimisation_beats_the_untrained_model(report: tuple[dict[str, Any], Path]) -> None:
    result, _ = report
    for row in result["images"]:
        assert row["optimisation"]["total_loss"] < row["model"]["total_loss"], row["photo"]
        assert row["ratio_total"] > 1
        assert -1 <= row["model"]["ssim"] <= 1 and -1 <= row["optimisation"]["ssim"] <= 1
    # the summary's ratio is that of the mean totals, as "mean loss within N x the optimisation's" reads
    totals = {kind: np.mean([r[kind]["total_loss"] for r in result["images"]]) for kind in ("model", "optimisation")}
    assert result["mean"]["ratio_total"] == pytest.approx(totals["model"] / totals["optimisation"])


def test_reports_each_style_layer(report: tuple[dict[str, Any], Path]) -> None:
    result, out = report
    for row in result["images"]:
        for kind in ("model", "optimisation"):
            layers = row[kind]["style_layers"]
            assert list(layers) == LOSS["style_layers"]
            # the weighted style term is the style weight times their sum (layer weights are 1 here)
            assert row[kind]["style_loss"] == pytest.approx(LOSS["style_weight"] * sum(layers.values()), rel=1e-4)
        # an untrained network is far from the painting at every layer, so 20 L-BFGS steps beat it at each
        assert all(row["optimisation"]["style_layers"][k] < v for k, v in row["model"]["style_layers"].items())
    mean = result["mean"]["model"]["style_layers"]["relu1_1"]
    assert mean == pytest.approx(np.mean([r["model"]["style_layers"]["relu1_1"] for r in result["images"]]))
    markdown = (out / "report.md").read_text()
    assert "| style layer | model | optimisation | model / optimisation |" in markdown
    assert "| relu1_1 |" in markdown and "| relu2_1 |" in markdown
    # a report written before the layers were recorded still renders, without their table
    older = json.loads(json.dumps(result))
    for row in [*older["images"], older["mean"]]:
        for kind in ("model", "optimisation"):
            del row[kind]["style_layers"]
    assert "| style layer |" not in render_markdown(older) and "**mean**" in render_markdown(older)


def test_each_row_keeps_the_optimisations_history_and_the_steps_that_match_the_model(
    report: tuple[dict[str, Any], Path],
) -> None:
    result, out = report
    for row in result["images"]:
        history = row["optimisation"]["history"]
        assert len(history) == STEPS + 1 and history[-1] == pytest.approx(row["optimisation"]["total_loss"], rel=1e-5)
        steps, total = row["steps_to_match"], row["model"]["total_loss"]
        assert history[steps] <= total and all(value > total for value in history[:steps])
    histories = np.array([row["optimisation"]["history"] for row in result["images"]])
    assert result["mean"]["optimisation"]["history"] == pytest.approx(histories.mean(axis=0).tolist())
    assert "steps to match" in (out / "report.md").read_text()


def test_steps_to_match_of_a_mean_are_those_of_the_mean_curve() -> None:
    """The mean's count compares the mean model loss with the mean optimisation loss after each step, as the
    mean ratio compares mean totals; a model below every step of the optimisation reads "> N"."""
    rows = [
        {"model": {"total_loss": 7.0}, "optimisation": {"total_loss": 5.0, "history": [10.0, 8.0, 6.0, 5.0]}},
        {"model": {"total_loss": 3.0}, "optimisation": {"total_loss": 4.0, "history": [9.0, 7.0, 5.0, 4.0]}},
    ]
    for row in rows:
        row["ratio_total"] = row["model"]["total_loss"] / row["optimisation"]["total_loss"]
        row["steps_to_match"] = _steps_to_match(row["optimisation"]["history"], row["model"]["total_loss"])
    assert [row["steps_to_match"] for row in rows] == [2, None]
    assert [steps_to_match_text(row) for row in rows] == ["2", "> 3"]
    mean = summary(rows)
    assert mean["optimisation"]["history"] == [9.5, 7.5, 5.5, 4.5] and mean["steps_to_match"] == 3
    assert summary([rows[0], {**rows[1], "optimisation": {"total_loss": 4.0}}]).keys() == mean.keys() - {
        "steps_to_match"
    }  # a row without a history (reused from an older report): no count for the mean
    assert steps_to_match_text({"model": {}, "optimisation": {}}) == "n/a"


def test_same_seed_gives_same_numbers(
    report: tuple[dict[str, Any], Path], model: Path, photos: Path, tmp_path: Path
) -> None:
    again = evaluate(model, photos, tmp_path, gatys_steps=STEPS, size=SIZE, vgg_weights="random")
    timing = ("seconds", "speedup")
    first = _numbers({"images": report[0]["images"], "mean": report[0]["mean"]}, skip=timing)
    assert first == _numbers({"images": again["images"], "mean": again["mean"]}, skip=timing)


def test_optimize_lowers_the_loss() -> None:
    torch.manual_seed(0)
    style = load_style_image("starry_night.jpg", 64)
    loss = build_perceptual_loss(style, "random", ["relu2_2"], ["relu1_1", "relu2_1"], 1.0, 10.0, 1.0)
    content = torch.rand(1, 3, SIZE, SIZE)
    for method in ("lbfgs", "adam"):
        image, history = optimize(content, loss, steps=10, method=method)
        assert image.shape == content.shape and 0 <= image.min() and image.max() <= 1
        assert len(history) == 11 and history[-1] < history[0], method
        with torch.no_grad():
            assert float(loss(image, content).total) == pytest.approx(history[-1])


def test_errors_are_one_line(model: Path, photos: Path, tmp_path: Path) -> None:
    with pytest.raises(StylenetError, match="no such photos folder"):
        evaluate(model, tmp_path / "missing", tmp_path / "out", vgg_weights="random")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.png").write_bytes(b"")
    with pytest.raises(StylenetError, match="no usable photos"):
        evaluate(model, empty, tmp_path / "out", gatys_steps=1, size=SIZE, vgg_weights="random")
    with pytest.raises(StylenetError, match="no such model file"):
        evaluate(tmp_path / "nope.pt", photos, tmp_path / "out", vgg_weights="random")
    with pytest.raises(StylenetError, match=r"--photos .*a.png is a file; --photos takes a folder of photos"):
        evaluate(model, photos / "a.png", tmp_path / "out", vgg_weights="random")


def test_a_size_no_memory_holds_is_refused_before_any_work(model: Path, photos: Path, tmp_path: Path, monkeypatch):
    import stylenet.evaluate

    monkeypatch.setattr(stylenet.evaluate, "available_memory", lambda device: 4 << 30)
    with pytest.raises(StylenetError, match=r"--size 3000: scoring a photo at 3000x3000 px needs at least 6.4 GB"):
        evaluate(model, photos, tmp_path / "out", size=3000, vgg_weights="random")
    assert not (tmp_path / "out").exists()


def test_a_photo_of_extreme_shape_is_cropped_without_resizing_it_whole(tmp_path: Path) -> None:
    from stylenet.evaluate_scoring import _load_photo

    strip = tmp_path / "strip.png"  # resized whole to a 512 px shorter side: 512 x 15,360,000 px
    Image.fromarray(np.linspace(0, 255, 30000, dtype=np.uint8).reshape(30000, 1).repeat(3, 1)[:, None]).save(strip)
    photo = _load_photo(strip, 512)
    assert photo.shape == (1, 3, 512, 512)
    middle = photo[0, 0, :, 0]  # the middle 1/30000 of the strip's ramp: grey levels near 127
    assert 0.45 < float(middle.min()) and float(middle.max()) < 0.55


def test_a_panorama_is_cropped_as_when_resized_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenet import evaluate_scoring

    rng = np.random.default_rng(1)
    wide = tmp_path / "wide.png"  # 5:1, past the whole-resize limit
    Image.fromarray(rng.integers(0, 256, (40, 200, 3), dtype=np.uint8)).save(wide)
    boxed = evaluate_scoring._load_photo(wide, 32)
    monkeypatch.setattr(evaluate_scoring, "_WHOLE_RESIZE_LIMIT", 10**9)
    whole = evaluate_scoring._load_photo(wide, 32)
    assert (boxed - whole).abs().max() <= 2 / 255  # the same crop; resampling the box alone rounds a little apart


def test_cli_glue(
    model: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], allocator_calls: list[bool]
) -> None:
    out = tmp_path / "cli"
    status = main(
        ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--gatys-steps", "3", "--size", str(SIZE)]
        + ["--vgg-weights", "random", "--method", "adam", "--style", "starry", "--memory-reuse", "off"]
    )
    assert status == 0 and allocator_calls == []  # --memory-reuse off leaves the allocator alone
    assert "report.md" in capsys.readouterr().out
    result = json.loads((out / "report.json").read_text())
    settings = result["settings"]
    assert settings["method"] == "adam" and settings["gatys_steps"] == 3
    # --style starry reads configs/style/starry.yaml: its size and weights replace the model's.
    assert settings["style"]["size"] == 512 and settings["loss"]["style_weight"] == 10.0


@pytest.mark.parametrize("weights", ["missing.pth", "lfs.pth"])
def test_a_bad_vgg_weights_option_is_named_as_typed_before_any_work(
    weights: str, model: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lfs.pth").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 9\n")
    out = tmp_path / "out"
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--vgg-weights", str(tmp_path / weights)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    # The option the user typed, not the training setting it stands for.
    assert err.count("\n") == 1 and f"--vgg-weights {tmp_path / weights}" in err and "loss.vgg_weights" not in err
    assert not out.exists()


def test_an_unreadable_vgg_weights_file_is_named_by_its_path_not_trainings_setting(
    model: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "vgg.pth"
    damaged.write_bytes(b"PK\x03\x04 a cut-off zip")
    out = tmp_path / "out"
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--vgg-weights", str(damaged)]
    assert main([*argv, "--gatys-steps", "0", "--size", str(SIZE)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"VGG19 weights {damaged}: not a readable torch state_dict" in err
    assert "loss.vgg_weights" not in err


def test_vgg_weights_the_model_names_but_this_machine_lacks_point_to_the_cli_option(
    photos: Path, tmp_path: Path
) -> None:
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    elsewhere = tmp_path / "elsewhere" / "vgg19.pth"
    metadata = {"style": {"name": "starry", "image": "starry_night.jpg", "size": 64}, "steps": 1}
    model = save_inference_checkpoint(
        tmp_path / "m.pt", network, metadata | {"loss": LOSS | {"vgg_weights": str(elsewhere)}}
    )
    with pytest.raises(StylenetError) as refused:
        evaluate(model, photos, tmp_path / "out", gatys_steps=0, size=SIZE)
    message = str(refused.value)
    assert str(elsewhere) in message and "--vgg-weights PATH" in message and "loss.vgg_weights" not in message
    assert not (tmp_path / "out").exists()


def test_a_models_painting_that_cannot_be_found_points_to_the_cli_option(photos: Path, tmp_path: Path) -> None:
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    metadata = {"style": {"name": "mine", "image": "not_here.jpg", "size": 64}, "steps": 1, "loss": LOSS}
    model = save_inference_checkpoint(tmp_path / "mine.pt", network, metadata)
    with pytest.raises(StylenetError, match="not_here.jpg") as refused:
        evaluate(model, photos, tmp_path / "out", gatys_steps=0, vgg_weights="random")
    # evaluate takes another painting as --style, not as train.py's style.image= override.
    assert "--style PATH" in str(refused.value) and "style.image=" not in str(refused.value)
    # A model trained on a painting given by its path, scored on another machine.
    metadata["style"]["image"] = str(tmp_path / "elsewhere" / "painting.jpg")
    moved = save_inference_checkpoint(tmp_path / "moved.pt", network, metadata)
    with pytest.raises(StylenetError, match=r"painting.jpg: no such file; score against another painting with --style"):
        evaluate(moved, photos, tmp_path / "out", gatys_steps=0, vgg_weights="random")


def test_zero_gatys_steps_scores_the_model_alone(
    model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the optimisation ran with --gatys-steps 0")

    monkeypatch.setattr("stylenet.evaluate_scoring.optimize", refuse)
    out = tmp_path / "model-only"
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--gatys-steps", "0"]
    assert main([*argv, "--size", str(SIZE), "--vgg-weights", "random"]) == 0
    assert "model total loss" in capsys.readouterr().out
    result = json.loads((out / "report.json").read_text())
    for row in [*result["images"], result["mean"]]:
        assert set(row) <= {"photo", "photo_sha256", "model"} and math.isfinite(row["model"]["total_loss"])
    assert any("--gatys-steps 0" in note for note in result["notes"])
    markdown = (out / "report.md").read_text()
    assert "| photo | model content | model style | model tv | model total | model s | SSIM model |" in markdown
    with Image.open(out / "grid.png") as grid:  # content and model rows only
        assert grid.size == (2 * SIZE + 3 * 2, 2 * SIZE + 3 * 2)


def test_an_existing_report_is_refused_before_any_work_unless_overwrite(
    model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("keep me")
    (out / "video_report.md").write_text("keep me too")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model loaded before the report folder was checked")

    monkeypatch.setattr("stylenet.evaluate.load_model", refuse)
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--gatys-steps", "0"]
    argv += ["--size", str(SIZE), "--vgg-weights", "random"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: output {out / 'report.md'} already exists")
    assert "--overwrite" in err[0]
    # A video report likewise, before the clip is even looked for.
    assert main(["evaluate", str(model), "--video", str(tmp_path / "absent.mp4"), "-o", str(out)]) == 2
    assert "video_report.md already exists" in capsys.readouterr().err
    assert (out / "report.md").read_text() == "keep me" and (out / "video_report.md").read_text() == "keep me too"
    monkeypatch.setattr("stylenet.evaluate.load_model", load_model)
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "report.md").read_text() != "keep me" and (out / "report.json").is_file()


def test_a_report_folder_that_is_a_file_is_refused(model: Path, photos: Path, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("a file, not a folder")
    assert main(["evaluate", str(model), "--photos", str(photos), "-o", str(afile), "--gatys-steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: -o {afile} is an existing file, not a folder; name a folder for the outputs"
    )


# --- --reference: an earlier report's optimisation, reused ------------------------------------------


def _no_optimisation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the optimisation ran although a reference held it")

    monkeypatch.setattr("stylenet.evaluate_scoring.optimize", refuse)


def test_a_reference_gives_the_optimisation_without_running_it(
    report: tuple[dict[str, Any], Path],
    model: Path,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    earlier, earlier_dir = report
    _no_optimisation(monkeypatch)
    out = tmp_path / "again"
    argv = ["evaluate", str(model), "--photos", str(photos), "-o", str(out), "--gatys-steps", str(STEPS)]
    assert main([*argv, "--size", str(SIZE), "--vgg-weights", "random", "--reference", str(earlier_dir)]) == 0
    assert "model/optimisation total loss" in capsys.readouterr().out
    again = json.loads((out / "report.json").read_text())
    assert again["settings"]["reference"] == str(earlier_dir / "report.json")
    for old, new in zip(earlier["images"], again["images"], strict=True):
        assert new["optimisation"] == json.loads(json.dumps(old["optimisation"]))
        assert new["photo_sha256"] == old["photo_sha256"]
        assert new["ratio_total"] == pytest.approx(new["model"]["total_loss"] / old["optimisation"]["total_loss"])
    assert again["mean"]["ratio_total"] == pytest.approx(earlier["mean"]["ratio_total"])
    assert any("not run again" in note for note in again["notes"])
    assert "results reused from" in (out / "report.md").read_text()
    with Image.open(out / "grid.png") as grid:  # content and model rows: the optimised images were not kept
        assert grid.size[1] == 2 * SIZE + 3 * 2


def test_a_reference_that_differs_is_refused_before_any_work(
    report: tuple[dict[str, Any], Path], model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, earlier_dir = report
    _no_optimisation(monkeypatch)
    common = {"gatys_steps": STEPS, "size": SIZE, "vgg_weights": "random", "reference": earlier_dir}

    def refused(match: str, **changes: Any) -> None:
        arguments = {"model": model, "photos": photos, "out_dir": tmp_path / "out"} | common | changes
        with pytest.raises(StylenetError, match=match):
            evaluate(**arguments)
        assert not (tmp_path / "out").exists()

    refused("ran with size 32, this one's is 48", size=48)
    refused("ran with seed 0, this one's is 1", seed=1)
    refused("ran with gatys_steps 20, this one's is 0", gatys_steps=0)
    refused("ran with method lbfgs, this one's is adam", method="adam")
    refused("no report.json there", reference=tmp_path)
    (tmp_path / "garbled.json").write_text("{ not json")
    refused("not a readable report", reference=tmp_path / "garbled.json")
    (tmp_path / "other.json").write_text(json.dumps({"settings": {**report[0]["settings"], "style": None}}))
    refused("not a report of stylenet evaluate", reference=tmp_path / "other.json")
    # Another painting for the style, and a photo file changed under the same name.
    other_painting = tmp_path / "paintings" / "starry.png"  # a style called starry, from another file
    other_painting.parent.mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(other_painting)
    refused("its starry painting is another file or size", style=str(other_painting))
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in photos.iterdir():
        (changed / path.name).write_bytes(path.read_bytes())
    Image.fromarray(np.zeros((36, 50, 3), dtype=np.uint8)).save(changed / "b.jpg")
    refused("its photo b.jpg is another file", photos=changed)
    # The same painting at another weight is another loss.
    heavier = save_inference_checkpoint(
        tmp_path / "heavier.pt",
        TransformerNet(width=0.25, num_residual_blocks=1).eval(),
        {
            "style": {"name": "starry", "image": "starry_night.jpg", "size": 64},
            "steps": 1,
            "loss": LOSS | {"style_weight": 20.0},
        },
    )
    refused("its starry loss differs in style_weight", model=heavier)
    # The temporal term's settings shape training pairs only: a model trained with other flows scores alike.
    steadier = save_inference_checkpoint(
        tmp_path / "steadier.pt",
        TransformerNet(width=0.25, num_residual_blocks=1).eval(),
        {"style": {"name": "starry", "image": "starry_night.jpg", "size": 64}, "steps": 1}
        | {"loss": LOSS | {"temporal_weight": 75.0, "temporal_flow": 3.0, "temporal_motion": "objects"}},
    )
    reused = evaluate(steadier, photos, tmp_path / "steadier", **common)
    assert reused["mean"]["optimisation"]["total_loss"] == pytest.approx(
        report[0]["mean"]["optimisation"]["total_loss"]
    )


def test_a_report_without_optimisation_is_no_reference(
    model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluate(model, photos, tmp_path / "losses-only", gatys_steps=0, size=SIZE, vgg_weights="random")
    with pytest.raises(StylenetError, match="it ran no optimisation"):
        evaluate(
            model,
            photos,
            tmp_path / "out",
            gatys_steps=STEPS,
            size=SIZE,
            vgg_weights="random",
            reference=tmp_path / "losses-only" / "report.json",
        )
