"""Configured objects built from their `_target_`, a failure to build one told in one line."""

from __future__ import annotations

from typing import Any

import hydra
import hydra.errors
from omegaconf import DictConfig

from stylenet.errors import ConfigError, StylenetError


def instantiate(node: DictConfig, group: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with our own errors and refused arguments as one line, not Hydra's wrapping."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as error:
        if isinstance(error.__cause__, StylenetError):
            raise error.__cause__ from None
        if isinstance(error.__cause__, (TypeError, ValueError)):  # e.g. an argument the class does not take
            raise ConfigError(f"{group}: {error.__cause__}") from error
        raise
