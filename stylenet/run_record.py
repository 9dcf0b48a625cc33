"""A run folder's record of how it was trained (Hydra's `.hydra/` files), kept through a refused run.

Hydra writes a run's configs into its folder before the run starts, so a run pointed at an earlier
run's folder (`hydra.run.dir=...`) and then refused before training (it would write over that run's
checkpoints, say, or its `ckpt_path` is damaged) used to leave the earlier checkpoints described by
the refused run's settings. `KeepRunRecord` (a Hydra callback, configs/hydra/default.yaml) reads the
files before Hydra writes them; `put_back` restores them unless `training_started` was called.

Module state rather than the callback's: the entry point exits on a refusal (`sys.exit(2)`) before
Hydra's end-of-run callbacks run, so it is the entry point that puts the files back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

# What each file held before this run started: its bytes, or None where there was no such file.
_before: dict[Path, bytes | None] = {}


class KeepRunRecord(Callback):
    """Remembers the `.hydra/` files already in a single run's folder before Hydra writes over them."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _before.clear()
        if config.hydra.output_subdir is None:
            return
        # Absolute: with hydra.job.chdir the run starts inside its folder.
        record = (Path(config.hydra.run.dir) / config.hydra.output_subdir).absolute()
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            path = record / name
            _before[path] = path.read_bytes() if path.is_file() else None


def training_started() -> None:
    """From here on the folder holds this run's work, and its record stays this run's."""
    _before.clear()


def put_back() -> None:
    """Restores the files as they were before this run; those it created alone are removed."""
    for path, content in _before.items():
        if content is not None:
            path.write_bytes(content)
        else:
            path.unlink(missing_ok=True)
    for folder in {path.parent for path in _before}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    _before.clear()
