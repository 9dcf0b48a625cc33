"""Train a style-transfer network: python train.py style=starry [experiment=quickstart] [key=value ...]"""

import logging
import re
import shutil
import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stylenet import run_record
from stylenet.errors import StylenetError
from stylenet.hardware import keep_freed_memory, wants_memory_reuse
from stylenet.run_folder import planned_folder, run_folder_problem, with_run_folder_of_output_dir
from stylenet.style_list import check_style_node
from stylenet.sweep_check import first_bad_job
from stylenet.train import check_config, train
from stylenet.training.lightning_notices import quiet_lightning_notices

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


# The run folder and its parents that existed before Hydra ran (a folder the user made, say): a refused run
# takes out what Hydra wrote into them, never the folders.
_FOLDERS_BEFORE: set[Path] = set()


def _remove_run_dir(run_dir: Path) -> None:
    """Removes a run dir Hydra made for a run stopped before any work, and parents it leaves empty."""
    for handler in logging.getLogger().handlers:  # Hydra's log file lives in the run dir
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
            handler.close()
            logging.getLogger().removeHandler(handler)
    if run_dir.resolve() in _FOLDERS_BEFORE:
        for entry in run_dir.iterdir():  # only Hydra's files: `_holds_only_hydra_files` said so
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return
    shutil.rmtree(run_dir)
    cwd = Path.cwd().resolve()
    for parent in run_dir.resolve().parents:  # outputs/<style>/, outputs/: only while empty, and inside cwd
        if parent == cwd or cwd not in parent.parents or parent in _FOLDERS_BEFORE or any(parent.iterdir()):
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
        else:  # refused in an earlier run's folder before training: its record of its settings stays as it was
            run_record.put_back()
        # One line a person can act on, not a traceback from deep inside a library.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def _composition_error(overrides: list[str]) -> str | None:
    """What Hydra would refuse in `overrides` (an unknown key, a style with no config file), as one line.

    Hydra reports these in several lines with exit status 1; composing the config first puts them in the
    one line and exit status 2 of every other mistake, before Hydra makes a run dir. Options of Hydra
    itself (--multirun, --help, hydra.* settings) are left to Hydra."""
    # Options, sweeps and extra config folders change what composes: Hydra judges those itself.
    hydra_own = ("hydra.mode", "hydra.searchpath", "hydra.sweep", "hydra/sweeper", "hydra/launcher")
    if any(arg.startswith("-") or arg.lstrip("+~").startswith(hydra_own) for arg in overrides):
        return None
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    plain = [arg for arg in overrides if not arg.lstrip("+~").startswith(("hydra.", "hydra/"))]
    configs = Path(__file__).resolve().parent / "configs"
    try:
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            cfg = compose(config_name="train", overrides=plain)
        check_style_node(cfg.style, "style")  # Hydra's run folder is named after the style: found before Hydra
    except StylenetError as error:
        return str(error)
    except yaml.YAMLError as error:  # a config file of the user's that is not YAML: where, and why
        return f"a config file is not valid YAML: {' '.join(str(error).split())}"
    except (HydraException, OmegaConfBaseException) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        message = " ".join(lines[:2]) if lines[0].startswith("Could not override") else lines[0]
        ambiguous = re.fullmatch(r"Ambiguous value for argument '(\w[\w.]*)=(.*)'", message)
        if ambiguous:
            key, value = ambiguous.groups()
            message += f": {key}=[{value}] for a list, or --multirun to sweep over it"
        elsewhere = re.match(r"Could not override '(\w+)\.(\w+)'", message)
        if elsewhere and (configs / elsewhere.group(1)).is_dir():  # a setting of another option of the group
            group, key = elsewhere.groups()
            owners = sorted(f.stem for f in (configs / group).glob("*.yaml") if key in _settings_of(f))
            if owners:
                choices = " or ".join(f"{group}={owner}" for owner in owners)
                message = f"{group}.{key} is a setting of {choices}, not of this run's {group}: add {group}={owners[0]}"
        missing = re.search(r"Could not (?:find|load) '(\w+)/([^']+)'", message)
        if missing and (configs / missing.group(1)).is_dir():
            names = sorted(path.stem for path in (configs / missing.group(1)).glob("*.yaml"))
            message = f"{missing.group(1)}={missing.group(2)}: no such config; choose one of {', '.join(names)}"
        return message
    return None


def _settings_of(config_file: Path) -> DictConfig:
    """The settings a group's option file holds; none where it is not YAML (said when it is selected)."""
    try:
        return OmegaConf.load(config_file) or OmegaConf.create({})
    except (yaml.YAMLError, OmegaConfBaseException):
        return OmegaConf.create({})


def _check_job(cfg: DictConfig, overrides: list[str]) -> None:
    """What `main` checks of a run before any work, for one job of a sweep (`sweep_check`)."""
    names = _selected_styles(overrides)
    if names is not None:
        cfg.styles = names
    check_config(cfg)


if __name__ == "__main__":
    sys.argv[1:] = with_run_folder_of_output_dir(sys.argv[1:])  # read by @hydra.main
    configs = Path(__file__).resolve().parent / "configs"
    planned = planned_folder(sys.argv[1:], configs)
    if planned is not None:
        _FOLDERS_BEFORE.update(p for p in (planned[0].absolute(), *planned[0].absolute().parents) if p.is_dir())
        _FOLDERS_BEFORE.update({p.resolve() for p in _FOLDERS_BEFORE})
    problem = (
        _composition_error(sys.argv[1:])
        or run_folder_problem(sys.argv[1:], planned)
        or first_bad_job(sys.argv[1:], configs, _check_job)
    )
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
