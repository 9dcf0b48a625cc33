"""Every shipped config composes, and bad input stops before training with one clear line."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import CONFIGS, REPO, compose_config
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from stylenet.errors import ConfigError
from stylenet.styles import find_style_image
from stylenet.validation import TRAIN_SETTINGS, check_train_config, duration

STYLES = sorted(p.stem for p in (CONFIGS / "style").glob("*.yaml") if p.stem != "custom")
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("style", STYLES)
def test_every_style_composes_and_its_image_resolves(style: str, shared_styles: Path) -> None:
    cfg = compose_config([f"style={style}", "paths.output_dir=unused"])
    assert cfg.style.name == style
    assert cfg.loss.style_weight == cfg.style.style_weight  # per-style weights reach the loss
    assert find_style_image(cfg.style.image).is_file()
    OmegaConf.to_container(cfg, resolve=True)


def test_starry_ships_with_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLENET_STYLE_DIR", raising=False)
    cfg = compose_config(["style=starry", "paths.output_dir=unused"])
    assert find_style_image(cfg.style.image).parent.name == "assets"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp"])
def test_experiments_and_trainers_compose(experiment: str, trainer: str) -> None:
    cfg = compose_config([f"experiment={experiment}", f"trainer={trainer}", "paths.output_dir=unused"])
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.trainer.max_steps > 0


def test_experiments_hold_only_overrides() -> None:
    quickstart = compose_config(["experiment=quickstart", "paths.output_dir=unused"])
    assert quickstart.data.source == "demo" and quickstart.data.image_size == 128
    # relu5_1 left out: a short run's network falls furthest short there (docs/evaluation.md)
    assert list(quickstart.loss.style_layers) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    assert duration(quickstart.trainer.max_time, "max_time") == timedelta(minutes=7)
    # Clipped: early gradients otherwise stall Adam (docs/evaluation.md#clipped-gradients)
    assert quickstart.trainer.gradient_clip_val == 50
    assert compose_config(["paths.output_dir=unused"]).trainer.gradient_clip_val is None
    # Crops at many scales under a falling rate (docs/evaluation.md#crops-at-many-scales)
    assert quickstart.data.resize == 256 and list(quickstart.data.crop_scale) == [0.25, 1.0]
    assert quickstart.lr_schedule == "cosine"
    assert compose_config(["paths.output_dir=unused"]).data.crop_scale is None
    # Another budget replaces the quickstart's, in any unit (a mapping there would merge with it).
    longer = compose_config(["experiment=quickstart", "trainer.max_time={hours:1}", "paths.output_dir=unused"])
    assert duration(longer.trainer.max_time, "max_time") == timedelta(hours=1)
    johnson = compose_config(["experiment=johnson2016", "paths.output_dir=unused"])
    assert johnson.data.source == "folder" and list(johnson.loss.style_layers) == [
        "relu1_2",
        "relu2_2",
        "relu3_3",
        "relu4_3",
    ]
    assert johnson.trainer.max_steps == 40000 and johnson.data.batch_size == 4 and johnson.optimizer.lr == 1e-3


def test_unknown_keys_and_groups_are_refused() -> None:
    with pytest.raises(ConfigCompositionException):
        compose_config(["model.widht=2"])
    with pytest.raises(ConfigCompositionException):
        compose_config(["style=no_such_style"])


def test_the_known_settings_are_those_of_train_yaml() -> None:
    raw = OmegaConf.load(CONFIGS / "train.yaml")
    groups = {next(iter(entry)) for entry in raw.defaults if not isinstance(entry, str)} - {"hydra", "experiment"}
    assert sorted(TRAIN_SETTINGS) == sorted({*raw.keys(), *groups} - {"defaults"})
    for experiment in EXPERIMENTS:  # none adds a setting of its own
        assert set(compose_config([f"experiment={experiment}", "paths.output_dir=unused"])) <= set(TRAIN_SETTINGS)


def test_an_added_key_like_a_setting_is_refused_with_the_setting_named() -> None:
    # Hydra's advice for `checkpoint_kep=3` is `+checkpoint_kep=3`, which no code would read.
    with pytest.raises(ConfigError, match=r"^checkpoint_kep: not a setting; did you mean checkpoint_keep\?$"):
        check_train_config(compose_config(["+checkpoint_kep=3", "paths.output_dir=unused"]))
    # A key unlike any setting stays allowed: a value other settings can interpolate.
    check_train_config(compose_config(["+my_size=96", "data.image_size=${my_size}", "paths.output_dir=unused"]))


def _run_train(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO, capture_output=True, text=True, timeout=120, env=env
    )


def test_cli_reports_a_missing_style_image_in_one_line(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "STYLENET_STYLE_DIR"}
    done = _run_train("style=wave", f"hydra.run.dir={tmp_path / 'run'}", env=env)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "wave.jpg" in lines[0] and "STYLENET_STYLE_DIR" in lines[0], done.stderr


def test_cli_reports_a_missing_data_root_in_one_line(tmp_path: Path) -> None:
    done = _run_train("data=folder", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nowhere" in lines[0], done.stderr
