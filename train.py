"""Train a style-transfer network: python train.py style=starry [experiment=quickstart] [key=value ...]"""

import logging
import re
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from stylenet.errors import StylenetError
from stylenet.hardware import keep_freed_memory, wants_memory_reuse
from stylenet.train import quiet_lightning_notices, train

# What Hydra writes into a run dir before `main` runs.
_HYDRA_CONFIGS = {"config.yaml", "hydra.yaml", "overrides.yaml"}


def _holds_only_hydra_files(run_dir: Path, log_name: str) -> bool:
    """Whether `run_dir` holds nothing but what Hydra writes there (its configs and the run's log)."""
    return (
        run_dir.is_dir()
        and not run_dir.is_symlink()
        and run_dir.resolve() != Path.cwd().resolve()
        and {p.name for p in run_dir.iterdir()} <= {".hydra", log_name}
        and {p.name for p in (run_dir / ".hydra").glob("*")} <= _HYDRA_CONFIGS
    )


def _remove_run_dir(run_dir: Path) -> None:
    """Removes a run dir Hydra made for a run stopped before any work, and parents it leaves empty."""
    for handler in logging.getLogger().handlers:  # Hydra's log file lives in the run dir
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
            handler.close()
            logging.getLogger().removeHandler(handler)
    shutil.rmtree(run_dir)
    cwd = Path.cwd().resolve()
    for parent in run_dir.resolve().parents:  # outputs/<style>/, outputs/: only while empty, and inside cwd
        if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()


def _selected_styles(overrides: list[str]) -> list[str] | None:
    """The names of `style=[a,b,...]`, Hydra's multiple selection, which it merges into one `style` node."""
    for override in overrides:
        match = re.fullmatch(r"style=\[(.*)\]", override.strip())
        if match:
            return [name.strip().strip("'\"") for name in match.group(1).split(",") if name.strip()]
    return None


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    names = _selected_styles(list(hydra_cfg.overrides.task))
    if names is not None:
        cfg.styles = names
    run_dir = Path(hydra_cfg.runtime.output_dir)
    log_file = run_dir / f"{hydra_cfg.job.name}.log"
    # A new run dir (Hydra made it just now: its log is still empty), not one an earlier run wrote to.
    new_run_dir = hydra_cfg.mode == RunMode.RUN and _holds_only_hydra_files(run_dir, log_file.name)
    new_run_dir = new_run_dir and (not log_file.exists() or log_file.stat().st_size == 0)
    try:
        if wants_memory_reuse(cfg.memory_reuse, repeated_work=True):  # training repeats one step
            keep_freed_memory()
        with quiet_lightning_notices():
            train(cfg)
    except StylenetError as error:
        if new_run_dir and _holds_only_hydra_files(run_dir, log_file.name):  # stopped before any work
            _remove_run_dir(run_dir)
        # One line a person can act on, not a traceback from deep inside a library.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
