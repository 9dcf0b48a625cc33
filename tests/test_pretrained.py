"""The shipped model: the file itself, its names wherever a model is taken, its card and its damage reports."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from stylenet import load_model, pretrained
from stylenet.checkpoint import CheckpointError, load_inference_checkpoint, save_inference_checkpoint
from stylenet.cli import main
from stylenet.errors import ConfigError
from stylenet.inference.model import load_network
from stylenet.networks.transformer import TransformerNet
from stylenet.pretrained.card import NOT_EVALUATED, PAINTING_KEYS, markdown
from stylenet.pretrained.pack import pack

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "stylenet" / "pretrained" / "paintings.pt"
CARD_YAML = REPO / "stylenet" / "pretrained" / "paintings.card.yaml"
FIVE = ["starry", "wave", "scream", "composition_vii", "udnie"]
FP32 = ["--precision", "fp32", "--compile", "off"]

sys.path.insert(0, str(REPO / "scripts"))
import pack_pretrained  # noqa: E402


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def _picture(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


# The shipped file itself.


def test_the_shipped_file_is_small_float16_and_names_five_styles() -> None:
    assert pretrained.LOCATION == SHIPPED
    assert SHIPPED.stat().st_size < 8 * 1024 * 1024
    payload = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert [style["name"] for style in payload["styles"]] == FIVE
    tensors = payload["state_dict"].values()
    assert tensors and all(t.dtype == torch.float16 for t in tensors if t.is_floating_point())
    network, _ = load_inference_checkpoint(SHIPPED)
    assert all(p.dtype == torch.float32 for p in network.parameters())  # run from float32, as any model
    assert pretrained.shipped().styles == tuple(FIVE)


def test_every_shipped_style_gives_its_own_picture() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64).expand(len(FIVE), -1, -1, -1)
    network, _ = load_network("paintings")
    with torch.no_grad():
        outputs = network(image, torch.eye(len(FIVE)))  # (5, 3, 64, 64): image i in style i, in one pass
    assert torch.isfinite(outputs).all()
    for i, a in enumerate(FIVE):
        for j in range(i + 1, len(FIVE)):
            assert (outputs[i] - outputs[j]).abs().mean() > 0.01, (a, FIVE[j])


def test_the_shipped_card_has_every_key() -> None:
    card = pretrained.shipped().card
    assert [style["name"] for style in card["styles"]] == FIVE
    for style in card["styles"]:
        assert set(style["painting"]) == set(PAINTING_KEYS) and all(style["painting"].values())
        assert set(style["loss_weights"]) == {"content", "style", "tv"}
        assert {"model_total_loss", "optimisation_total_loss", "ratio_total", "model_ssim"} <= set(style["evaluation"])
    assert {"steps", "image_size", "photos", "command"} <= set(card["training"])
    assert card["training"]["steps"] == torch.load(SHIPPED, weights_only=True)["steps"]
    assert card["weights"] == "float16"


def test_the_repository_card_describes_the_shipped_styles_and_their_training(tmp_path: Path) -> None:
    given = yaml.safe_load(CARD_YAML.read_text())
    assert list(given["paintings"]) == FIVE
    assert given["paintings"]["wave"]["artist"] == "Katsushika Hokusai"
    photos = given["training"]["photos"]
    assert photos["count"] == len(photos["names"]) == 38
    assert not set(photos["names"]) & set(photos["held_out"])  # evaluation photos never train
    card = pack(SHIPPED, CARD_YAML, tmp_path / "packed.pt")  # complete: no placeholder left
    assert card["training"]["command"] == given["training"]["command"]


# Names wherever a model is taken.


def test_load_model_takes_shipped_names_blends_and_the_bundle() -> None:
    assert load_model("wave").style == "wave"
    blend = load_model("starry=0.7,wave=0.3")
    assert torch.allclose(blend.style_weights, torch.tensor([0.7, 0.3, 0.0, 0.0, 0.0]))
    assert load_model("paintings").styles == FIVE
    assert load_model("paintings", style="udnie").style == "udnie"
    assert load_model("wave", style="wave").style == "wave"  # the same choice twice is no conflict
    with pytest.raises(ConfigError, match="wave names a shipped style and style starry another"):
        load_model("wave", style="starry")


@pytest.mark.slow
def test_stylize_by_shipped_name_blend_and_bundle(photo: Path, tmp_path: Path) -> None:
    runs = {"wave": ["wave"], "blend": ["starry=0.7,wave=0.3"], "bundle": ["paintings", "--style", "wave"]}
    for label, argv in runs.items():
        assert main(["stylize", argv[0], str(photo), "-o", str(tmp_path / f"{label}.png"), *argv[1:], *FP32]) == 0
    wave, blend, bundle = (_picture(tmp_path / f"{label}.png") for label in runs)
    assert np.array_equal(wave, bundle)  # a shipped name is the shipped file with that style
    assert np.abs(wave - blend).mean() > 1
    assert np.abs(wave - _picture(photo)).mean() > 1


def test_a_name_and_another_style_is_one_error(photo: Path, tmp_path: Path, capsys) -> None:
    assert main(["stylize", "wave", str(photo), "--style", "starry", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "paintings with style starry" in err
    assert not (tmp_path / "x.png").exists()


def test_an_unknown_name_lists_the_shipped_styles(photo: Path, tmp_path: Path, capsys) -> None:
    assert main(["stylize", "mona_lisa", str(photo), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: no model file or shipped style named mona_lisa; shipped styles: starry, wave, scream, "
        "composition_vii, udnie (or paintings with a style choice)"
    )
    with pytest.raises(CheckpointError, match="no model file or shipped style named starry=0.5,mona"):
        load_model("starry=0.5,mona")
    with pytest.raises(CheckpointError, match="missing.pt: no such model file"):
        load_model("missing.pt")  # a path is a path: no shipped name is looked for


def test_an_existing_file_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("wave").write_text("not a model")
    with pytest.raises(CheckpointError, match="wave: unknown model type"):
        load_model("wave")


def test_load_network_bakes_a_shipped_choice() -> None:
    network, metadata = load_network("wave")
    assert network.num_styles == 1 and metadata["style"]["name"] == "wave"
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(network(image), load_model(SHIPPED, precision="fp32", style="wave")(image), atol=1e-5)
    assert load_network("paintings")[0].num_styles == 5


def test_export_of_a_shipped_style_writes_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stylenet.inference.export as export_module

    def export(network, metadata, target: Path, fmt: str, precision=None) -> Path:  # the file, not the minutes
        target.write_bytes(fmt.encode())
        return target

    monkeypatch.setattr(export_module, "export", export)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "wave", "--format", "onnx"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wave.onnx"]
    assert main(["export", "paintings", "--format", "pt2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paintings.pt2", "wave.onnx"]
    assert sorted(p.name for p in SHIPPED.parent.iterdir() if p.suffix in (".onnx", ".pt2")) == []


def test_evaluate_and_benchmark_take_shipped_names(tmp_path: Path, capsys) -> None:
    argv = ["evaluate", "wave", "--photos", str(tmp_path), "--style", "starry", "-o", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "wave names a shipped style and style starry another" in capsys.readouterr().err
    assert main(["evaluate", "mona_lisa", "--photos", str(tmp_path)]) == 2
    assert "shipped styles: starry, wave" in capsys.readouterr().err
    from stylenet.benchmark.suite import _prepare

    _, _, _, styles = _prepare("udnie", [], tmp_path, styles=None)
    saved = torch.load(tmp_path / "network.pt", weights_only=True)
    assert saved["config"]["num_styles"] == 1 and styles == {}


# A user's own model of a shipped name.


@pytest.mark.slow
def test_a_users_model_of_a_shipped_name_is_noted_not_run(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["stylize", "wave", str(photo), "-o", "plain.png", *FP32]) == 0
    assert "note" not in capsys.readouterr().err
    torch.manual_seed(0)
    own = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    save_inference_checkpoint(Path("checkpoints") / "wave.pt", own, {"style": {"name": "wave"}, "steps": 1})
    assert main(["stylize", "wave", str(photo), "-o", "shadowed.png", *FP32]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note")]
    assert len(notes) == 1 and "checkpoints/wave.pt is used only when given by its path" in notes[0]
    assert np.array_equal(_picture(Path("shadowed.png")), _picture(Path("plain.png")))  # the shipped model ran
    assert main(["stylize", "checkpoints/wave.pt", str(photo), "-o", "own.png", *FP32]) == 0
    assert not np.array_equal(_picture(Path("own.png")), _picture(Path("plain.png")))


@pytest.mark.slow
def test_training_notes_a_shipped_name_and_never_writes_among_the_shipped(
    tiny_cfg, caplog: pytest.LogCaptureFixture
) -> None:
    from stylenet.train import _note_shipped_name, check_config

    with caplog.at_level(logging.INFO, logger="stylenet.train"):
        _note_shipped_name("wave", Path("checkpoints/wave.pt"))
        _note_shipped_name("graffiti", Path("checkpoints/graffiti.pt"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "`stylenet stylize wave` still runs the shipped model" in lines[0]
    assert "checkpoints/wave.pt" in lines[0]
    tiny_cfg.paths.kept_models_dir = str(SHIPPED.parent)
    with pytest.raises(ConfigError, match="paths.kept_models_dir=.* is the shipped models' folder"):
        check_config(tiny_cfg)


# A damaged shipped file.


def test_a_git_lfs_pointer_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: Path, capsys) -> None:
    pointer = tmp_path / "paintings.pt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 3408189\n")
    monkeypatch.setattr(pretrained, "LOCATION", pointer)
    with pytest.raises(pretrained.ShippedModelError, match="is a Git LFS pointer, not the model: run `git lfs"):
        load_model("wave")
    assert main(["stylize", "wave", str(photo), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "git lfs pull" in err and "reinstall" in err


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_truncated_or_missing_shipped_file_names_it(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    broken = tmp_path / "paintings.pt"
    if damage == "truncated":
        broken.write_bytes(SHIPPED.read_bytes()[: SHIPPED.stat().st_size // 2])
    monkeypatch.setattr(pretrained, "LOCATION", broken)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(broken) in err and "reinstall stylenet" in err
    with pytest.raises(pretrained.ShippedModelError):
        load_network("paintings")
    with pytest.raises(CheckpointError, match="missing.pt: no such model file"):
        load_model("missing.pt")  # a path is never blamed on the shipped file


# `stylenet models` and packing.


def test_models_lists_each_shipped_style_and_the_file(capsys) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("shipped styles") and "starry=0.7,wave=0.3" in lines[0]
    for name, line in zip(FIVE, lines[1:6], strict=True):
        assert line.split()[0] == name
    assert "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)" in lines[2]
    assert str(SHIPPED) in lines[-1] and "paintings" in lines[-1]


def _card_yaml(tmp_path: Path, **training) -> Path:
    given = yaml.safe_load(CARD_YAML.read_text())
    given["paintings"] = {k: v for k, v in given["paintings"].items() if k in ("starry", "wave")}
    given["training"] = {**given["training"], "image_size": 128, "command": "python train.py ...", **training}
    given["training"]["photos"]["names"] = ["a", "b"]
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(given))
    return path


def _report(tmp_path: Path) -> Path:
    """A report of `stylenet evaluate` on a model of starry and wave, as evaluate writes it."""

    def mean(model: float, optimised: float) -> dict:
        return {
            "model": {"total_loss": model, "ssim": 0.4},
            "optimisation": {"total_loss": optimised, "ssim": 0.5},
            "ratio_total": model / optimised,
        }

    styles = [{"style": {"name": n}, "mean": mean(m, o)} for n, m, o in (("starry", 3.0, 2.0), ("wave", 4.0, 2.0))]
    report = {"settings": {"gatys_steps": 300, "size": 256}, "styles": styles, "photos": ["chelsea.png"]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=2).eval()
    styles = [{"name": n, "image": f"{n}.jpg", "size": 512, "style_weight": 3.0} for n in ("starry", "wave")]
    metadata = {"styles": styles, "steps": 7, "loss": {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 2.0}}
    return save_inference_checkpoint(tmp_path / "two.pt", network, metadata)


def test_pack_stores_float16_and_a_card_from_checkpoint_yaml_and_report(tmp_path: Path, tiny_model: Path) -> None:
    out, md = tmp_path / "packed" / "shipped.pt", tmp_path / "models.md"
    argv = [str(tiny_model), "--card", str(_card_yaml(tmp_path)), "--report", str(_report(tmp_path))]
    assert pack_pretrained.main([*argv, "-o", str(out), "--markdown", str(md)]) == 0
    payload = torch.load(out, weights_only=True)
    assert all(t.dtype == torch.float16 for t in payload["state_dict"].values() if t.is_floating_point())
    card = payload["card"]
    assert card["training"]["steps"] == 7 and card["training"]["image_size"] == 128
    starry, wave = card["styles"]
    assert starry["loss_weights"] == {"content": 1.0, "style": 3.0, "tv": 2.0}  # its own, else the model's
    assert starry["evaluation"]["model_total_loss"] == 3.0 and wave["evaluation"]["ratio_total"] == 2.0
    assert wave["evaluation"]["optimisation_ssim"] == 0.5 and card["evaluation"]["photos"] == ["chelsea.png"]
    original, _ = load_inference_checkpoint(tiny_model)
    packed, _ = load_inference_checkpoint(out)
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        both = torch.tensor([0.5, 0.5])
        assert (packed(image, both) - original(image, both)).abs().max() < 0.02  # float16 rounding only
    assert "| wave | Katsushika Hokusai, *The Great Wave off Kanagawa* (c. 1831)" in md.read_text()
    assert md.read_text().count("\n| ") == 3  # header and the two styles


def test_pack_without_a_report_says_not_evaluated(tmp_path: Path, tiny_model: Path, capsys) -> None:
    out = tmp_path / "shipped.pt"
    assert pack_pretrained.main([str(tiny_model), "--card", str(_card_yaml(tmp_path)), "-o", str(out)]) == 0
    card = torch.load(out, weights_only=True)["card"]
    assert card["evaluation"] == NOT_EVALUATED
    assert all(style["evaluation"] == NOT_EVALUATED for style in card["styles"])
    assert "not evaluated" in markdown(card)
    todo = _card_yaml(tmp_path, command="TODO")
    assert pack_pretrained.main([str(tiny_model), "--card", str(todo), "-o", str(tmp_path / "no.pt")]) == 2
    assert "placeholders to fill (TODO): training.command" in capsys.readouterr().err
    assert not (tmp_path / "no.pt").exists()


def test_pack_refuses_a_card_or_report_of_other_styles(tmp_path: Path, tiny_model: Path) -> None:
    card = _card_yaml(tmp_path)
    given = yaml.safe_load(card.read_text())
    del given["paintings"]["wave"]
    card.write_text(yaml.safe_dump(given))
    with pytest.raises(ConfigError, match=r"the card's paintings \(starry\) must be the model's styles"):
        pack(tiny_model, card, tmp_path / "no.pt")
    report = json.loads(_report(tmp_path).read_text())
    report["styles"][1]["style"]["name"] = "udnie"
    (tmp_path / "other.json").write_text(json.dumps(report))
    with pytest.raises(ConfigError, match="the report scores udnie, which the model does not hold"):
        pack(tiny_model, _card_yaml(tmp_path), tmp_path / "no.pt", tmp_path / "other.json")


def test_the_shipped_location_is_a_copyable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy elsewhere (an install's layout) is read the same: names come from the file, not from code.
    copy = tmp_path / "paintings.pt"
    shutil.copy2(SHIPPED, copy)
    monkeypatch.setattr(pretrained, "LOCATION", copy)
    assert pretrained.shipped().path == copy and pretrained.shipped().styles == tuple(FIVE)


def test_pack_refuses_to_replace_a_file_without_overwrite(tmp_path: Path, tiny_model: Path, capsys) -> None:
    out, md = tmp_path / "shipped.pt", tmp_path / "models.md"
    out.write_bytes(b"the model shipped so far")
    argv = [str(tiny_model), "--card", str(_card_yaml(tmp_path)), "-o", str(out), "--markdown", str(md)]
    assert pack_pretrained.main(argv) == 2
    assert capsys.readouterr().err == f"error: {out} exists: pass --overwrite to replace it, or name another file\n"
    assert out.read_bytes() == b"the model shipped so far" and not md.exists()
    md.write_text("the card so far")
    argv[argv.index(str(out))] = str(tmp_path / "new.pt")
    assert pack_pretrained.main(argv) == 2 and md.read_text() == "the card so far"
    assert capsys.readouterr().err.startswith(f"error: {md} exists: pass --overwrite")
    assert pack_pretrained.main([*argv, "--overwrite"]) == 0
    assert torch.load(tmp_path / "new.pt", weights_only=True)["card"] and md.read_text() != "the card so far"


# scripts/train_paintings.sh: its arguments are checked before anything trains.


def _train_paintings(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """The script run with `python` and `stylenet` standing in for the real ones: a check that lets a bad
    argument through fails the test rather than starting hours of training."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    for tool in ("python", "stylenet"):
        (fake / tool).write_text(f'#!/bin/sh\necho "{tool} ran" >&2\nexit 1\n')
        (fake / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    script = REPO / "scripts" / "train_paintings.sh"
    return subprocess.run(["bash", str(script), *argv], capture_output=True, text=True, env=env, cwd=tmp_path)


@pytest.mark.slow
def test_train_paintings_without_arguments_prints_its_usage(tmp_path: Path) -> None:
    done = _train_paintings(tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "usage: bash scripts/train_paintings.sh PHOTOS OUT [--gpu] (trains for hours, then replaces "
        "stylenet/pretrained/paintings.pt and docs/models.md)"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "file", "empty", "held_out_only"])
def test_train_paintings_refuses_photos_it_cannot_train_on(kind: str, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    if kind == "file":
        photos.write_text("not a folder")
    elif kind != "missing":
        photos.mkdir()
        (photos / "notes.txt").write_text("not a photo")
    if kind == "held_out_only":
        Image.new("RGB", (8, 8)).save(photos / "chelsea.jpg")
    done = _train_paintings(tmp_path, "photos", "out")
    expected = {
        "missing": "error: PHOTOS photos does not exist: give the folder of photos to train on",
        "file": "error: PHOTOS photos is not a folder: give the folder of photos to train on",
    }.get(kind, "error: PHOTOS photos holds no photo to train on (.jpg, .png ...; the held-out ")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and done.stderr.startswith(expected)
    assert not (tmp_path / "out").exists()  # nothing made, nothing trained


@pytest.mark.slow
def test_train_paintings_links_the_photos_then_trains_from_the_repository(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("street.JPG", "chelsea.png"):
        Image.new("RGB", (8, 8)).save(photos / name)
    (photos / "notes.txt").write_text("not a photo")
    done = _train_paintings(tmp_path, "photos", "out", "--gpu")
    assert done.returncode == 1 and done.stderr.splitlines() == ["python ran"]  # the first training step, faked
    assert [p.name for p in (tmp_path / "out" / "train").iterdir()] == ["street.JPG"]
    assert [p.name for p in (tmp_path / "out" / "held_out").iterdir()] == ["chelsea.png"]
