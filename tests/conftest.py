"""Shared fixtures: composed Hydra configs shrunk to run in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from skip_policy import StrictSkips, needs_painting

from stylenet import hardware
from stylenet.errors import ConfigError
from stylenet.styles import STYLE_DIR_ENV, find_style_image

pytest_plugins = ("pytester",)  # tests/test_skip_policy.py runs pytest on small test files

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHARED_STYLES = REPO.parent / "shared" / "styles"
SHARED_VIDEOS = REPO.parent / "shared" / "videos"  # vtest.avi and tree.avi, for the tests that use real clips


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("STYLENET_STRICT_SKIPS") == "1":
        config.pluginmanager.register(StrictSkips(), "stylenet-strict-skips")


@pytest.fixture(autouse=True)
def allocator_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Memory reuse changes the whole process's allocator for good, so in the pytest process the
    commands that would switch it on only record the call; tests of the real thing use a child
    process. `pytest_sessionfinish` checks that nothing got past this."""
    calls: list[bool] = []
    monkeypatch.setattr(hardware, "keep_freed_memory", lambda enabled=True: calls.append(enabled) or True)
    return calls


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hardware._keeping_freed_memory:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nerror: a test switched on memory reuse (keep_freed_memory) inside the pytest process")


def style_dir() -> Path | None:
    """Where the paintings not shipped with the package are: $STYLENET_STYLE_DIR, else ../shared/styles."""
    given = os.environ.get(STYLE_DIR_ENV)
    if given:
        return Path(given)
    return SHARED_STYLES if SHARED_STYLES.is_dir() else None


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


def require_painting(style: str) -> None:
    """Skips the calling test when `style`'s painting is neither shipped nor in $STYLENET_STYLE_DIR."""
    image = OmegaConf.load(CONFIGS / "style" / f"{style}.yaml").image
    try:
        find_style_image(image)
    except ConfigError:
        pytest.skip(needs_painting(image))


@pytest.fixture
def shared_styles(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """The paintings folder (see `style_dir`) as STYLENET_STYLE_DIR; None where there is none.

    A test parametrised by `style` skips when that style's painting is neither shipped nor in
    the folder; starry, which ships with the package, always runs.
    """
    folder = style_dir()
    if folder is not None:
        monkeypatch.setenv(STYLE_DIR_ENV, str(folder))
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "style" in callspec.params:
        require_painting(callspec.params["style"])
    return folder
