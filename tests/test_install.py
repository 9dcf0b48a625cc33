"""A non-editable install carries every module and the configs that `evaluate` and `benchmark` read.

The install goes to a folder (`pip install --target`, no dependencies: they are this
interpreter's), and the checks run in a fresh process whose working directory is outside the
repository, so nothing can be found through the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from stylenet.checkpoint import save_inference_checkpoint
from stylenet.networks.transformer import TransformerNet

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "stylenet", "configs")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install .` of a copy of the repository (the build writes into its source folder)."""
    source, target = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run([*command, "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def _run(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    # PYTHONPATH is the install alone: the repository must not be importable from here.
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_install_holds_every_module_and_the_configs(installed: Path) -> None:
    modules = {p.relative_to(REPO) for p in (REPO / "stylenet").rglob("*.py")}
    assert modules == {p.relative_to(installed) for p in (installed / "stylenet").rglob("*.py")}
    shipped = installed / "stylenet" / "configs"
    configs = {p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*.yaml")}
    assert configs == {p.relative_to(shipped) for p in shipped.rglob("*.yaml")}


def test_install_carries_the_shipped_model(installed: Path, tmp_path: Path) -> None:
    shipped = REPO / "stylenet" / "pretrained" / "paintings.pt"
    copy = installed / "stylenet" / "pretrained" / "paintings.pt"
    assert copy.read_bytes() == shipped.read_bytes()
    assert (installed / "stylenet" / "pretrained" / "paintings.card.yaml").is_file()
    done = _run(installed, tmp_path, "-m", "stylenet.cli", "models")
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(copy) in done.stdout and "starry" in done.stdout


def test_installed_package_reads_the_training_defaults(installed: Path, tmp_path: Path) -> None:
    code = (
        "import json, stylenet\n"
        "from stylenet.config_files import config_dir, default_loss, default_learning_rate, style_config\n"
        "print(json.dumps({'package': stylenet.__file__, 'configs': str(config_dir()), 'loss': default_loss(),"
        " 'lr': default_learning_rate(), 'starry': str(style_config('starry'))}))\n"
    )
    done = _run(installed, tmp_path, "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert Path(found["package"]).is_relative_to(installed)
    assert Path(found["configs"]) == installed / "stylenet" / "configs"
    assert Path(found["starry"]) == installed / "stylenet" / "configs" / "style" / "starry.yaml"
    # The same values Hydra composes for train.py from the repository's configs/.
    style = OmegaConf.load(REPO / "configs" / "style" / "starry.yaml")
    loss = OmegaConf.load(REPO / "configs" / "loss" / "perceptual.yaml")
    assert found["loss"]["content_layers"] == list(loss.content_layers)
    assert found["loss"]["style_layers"] == list(loss.style_layers)
    assert found["loss"]["style_weight"] == style.style_weight and found["loss"]["tv_weight"] == style.tv_weight
    assert found["lr"] == OmegaConf.load(REPO / "configs" / "optimizer" / "adam.yaml").lr


@pytest.mark.slow
def test_installed_evaluate_uses_the_configured_loss(installed: Path, tmp_path: Path) -> None:
    # A model whose metadata holds no loss definition: evaluate falls back on configs/loss.
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    metadata = {"style": {"name": "starry", "image": "starry_night.jpg", "size": 32}, "steps": 1}
    model = save_inference_checkpoint(tmp_path / "tiny.pt", network, metadata)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(photos / "a.png")
    argv = ["-m", "stylenet.cli", "evaluate", str(model), "--photos", str(photos), "-o", str(tmp_path / "report")]
    done = _run(installed, tmp_path, *argv, "--gatys-steps", "1", "--size", "16", "--vgg-weights", "random")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["settings"]["loss_defaults_used"]
    configured = OmegaConf.load(REPO / "configs" / "loss" / "perceptual.yaml")
    assert report["settings"]["loss"]["content_layers"] == list(configured.content_layers)
