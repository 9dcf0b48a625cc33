"""Where `python train.py` writes a run, settled before Hydra makes the folder.

Hydra's run folder (`hydra.run.dir`) holds a run's `.hydra/` settings and its log; `paths.output_dir`
(by default that same folder) holds its checkpoints, TensorBoard events and samples. A run given only
`paths.output_dir=DIR` used to split in two: its files in DIR, its settings and log in a dated folder
under outputs/. And a run folder that cannot be made was Hydra's traceback, not one line.
"""

from __future__ import annotations

from pathlib import Path

from stylenet.atomic_write import why_unwritable

_MULTIRUN_FLAGS = ("-m", "--multirun")


def _value_of(overrides: list[str], key: str) -> str | None:
    """The last value `overrides` give `key` (with or without Hydra's `+`/`++` prefix), or None."""
    found = None
    for override in overrides:
        name, sep, value = override.lstrip("+").partition("=")
        if sep and name == key:
            found = value
    return found


def with_run_folder_of_output_dir(overrides: list[str]) -> list[str]:
    """`overrides` with `hydra.run.dir=DIR` added where `paths.output_dir=DIR` is given alone, so that the
    run's settings and log go with its checkpoints. Sweeps (`--multirun`) keep one folder per job."""
    output_dir = _value_of(overrides, "paths.output_dir")
    if output_dir is None or _value_of(overrides, "hydra.run.dir") is not None:
        return overrides
    if "${" in output_dir:  # an interpolation of the run folder itself (${hydra:runtime.output_dir}/ck, say)
        return overrides
    if any(flag in overrides for flag in _MULTIRUN_FLAGS) or _value_of(overrides, "hydra.mode") is not None:
        return overrides
    return [*overrides, f"hydra.run.dir={output_dir}"]


def folder_problem(folder: Path) -> str | None:
    """Why the folder `folder` cannot be made (or written to, where it exists), or None where it can."""
    existing = folder.absolute()  # a relative path's last parent is ".", which names nothing
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    reason = why_unwritable(existing)
    if reason is None:
        return None
    return f"cannot write in {existing} ({reason})"


def run_folder_problem(overrides: list[str], configs: Path) -> str | None:
    """Why the run folder Hydra is about to make for `overrides` cannot be made, as one line; None where it
    can, or where composing the settings fails (the caller reports that) or needs Hydra's own options."""
    multirun = any(flag in overrides for flag in _MULTIRUN_FLAGS) or _value_of(overrides, "hydra.mode") == "MULTIRUN"
    if any(arg.startswith("-") and arg not in _MULTIRUN_FLAGS for arg in overrides):
        return None  # --help, --cfg and the like make no folder
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    plain = [arg for arg in overrides if arg not in _MULTIRUN_FLAGS]
    try:
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            cfg = compose(config_name="train", overrides=plain, return_hydra_config=True)
            folder = str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
    except (HydraException, OmegaConfBaseException):
        return None
    output_dir = _value_of(overrides, "paths.output_dir")
    if output_dir is not None and "${" not in output_dir:  # where the checkpoints go, checked as typed
        problem = folder_problem(Path(output_dir).expanduser())
        if problem is not None:
            return f"paths.output_dir={output_dir}: {problem}"
    problem = folder_problem(Path(folder).expanduser())
    if problem is None:
        return None
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = _value_of(overrides, key)
    if given is None:
        return f"the run folder {folder}: {problem}; choose another with {key}=DIR"
    return f"{key}={given}: {problem}"
