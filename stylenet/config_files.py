"""Finding the project's YAML configs (`configs/`) from a source tree or an installed package.

`configs/` at the top of the repository is what Hydra's `train.py` composes; an installed
package carries the same files as `stylenet/configs/` (pyproject.toml maps one onto the other),
so the commands that need the training defaults (`evaluate`, `benchmark`) read them from here
rather than keeping copies in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylenet.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent
# Installed (wheel) layout first, then the source tree (a checkout, or an editable install).
_CANDIDATES = (_PACKAGE / "configs", _PACKAGE.parent / "configs")


def config_dir() -> Path:
    """The folder holding train.yaml, loss/, style/ ..., wherever the package was installed from."""
    for candidate in _CANDIDATES:
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(f"the project's configs are missing (looked in {', '.join(map(str, _CANDIDATES))}); reinstall")


def style_config(name: str) -> Path | None:
    """configs/style/NAME.yaml of the package, else of a `configs/` folder in the working directory."""
    for folder in (config_dir() / "style", Path("configs") / "style"):
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    return None


def _default_group(group: str) -> str:
    """The option train.yaml's defaults list picks for `group` (e.g. style -> starry)."""
    from omegaconf import OmegaConf

    for entry in OmegaConf.to_container(OmegaConf.load(config_dir() / "train.yaml"))["defaults"]:
        if isinstance(entry, dict) and group in entry:
            return str(entry[group])
    raise KeyError(group)


def default_loss() -> dict[str, Any]:
    """The loss of `python train.py` as configured: configs/loss/<default> with its style's weights.

    Keys are `build_perceptual_loss`'s arguments plus Hydra's `_target_`.
    """
    from omegaconf import OmegaConf

    root = config_dir()
    composed = OmegaConf.create(
        {
            "style": OmegaConf.load(root / "style" / f"{_default_group('style')}.yaml"),
            "loss": OmegaConf.load(root / "loss" / f"{_default_group('loss')}.yaml"),
        }
    )
    return OmegaConf.to_container(composed.loss, resolve=True)


def default_learning_rate() -> float:
    """The optimiser's learning rate as configured for `python train.py`."""
    from omegaconf import OmegaConf

    return float(OmegaConf.load(config_dir() / "optimizer" / f"{_default_group('optimizer')}.yaml").lr)
