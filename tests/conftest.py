"""Shared fixtures: composed Hydra configs shrunk to run in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHARED_STYLES = REPO.parent / "shared" / "styles"


def tiny_overrides(tmp_path: Path) -> list[str]:
    """A whole training run in a few seconds: small images, a narrow net, a random VGG."""
    return [
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.kept_models_dir={tmp_path / 'kept'}",
        "data.image_size=32",
        "data.batch_size=2",
        "style.size=64",
        "sample_size=32",
        "model.width=0.25",
        "model.num_residual_blocks=1",
        "loss.vgg_weights=random",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "checkpoint_every_n_steps=2",
        "sample_every_n_steps=2",
    ]


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> DictConfig:
    return compose_config(tiny_overrides(tmp_path))


@pytest.fixture
def shared_styles(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The public-domain paintings beside the checkout, as STYLENET_STYLE_DIR."""
    if not SHARED_STYLES.is_dir():
        pytest.skip(f"needs the paintings in {SHARED_STYLES}")
    monkeypatch.setenv("STYLENET_STYLE_DIR", str(SHARED_STYLES))
    return SHARED_STYLES
