"""Where `python train.py` writes a run, settled before Hydra makes the folder.

Hydra's run folder (`hydra.run.dir`) holds a run's `.hydra/` settings and its log; `paths.output_dir`
(by default that same folder) holds its checkpoints, TensorBoard events and samples. Given alone,
`paths.output_dir=DIR` is the run folder too, so that a run's files stay together; a folder that cannot
be made is one line before Hydra makes anything.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from stylenet.atomic_write import folder_problem
from stylenet.sweep_check import MULTIRUN_FLAGS, sweep_jobs


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
    if any(flag in overrides for flag in MULTIRUN_FLAGS) or _value_of(overrides, "hydra.mode") is not None:
        return overrides
    return [*overrides, f"hydra.run.dir={output_dir}"]


def planned_folder(overrides: list[str], configs: Path) -> tuple[Path, bool, str | None] | None:
    """The folder Hydra is about to make for `overrides` (a sweep's under --multirun), whether it is a sweep's,
    and `paths.output_dir` where given; None where composing the settings fails (the caller reports that) or
    needs Hydra's own options."""
    multirun = any(flag in overrides for flag in MULTIRUN_FLAGS) or _value_of(overrides, "hydra.mode") == "MULTIRUN"
    if any(arg.startswith("-") and arg not in MULTIRUN_FLAGS for arg in overrides):
        return None  # --help, --cfg and the like make no folder
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    plain = [arg for arg in overrides if arg not in MULTIRUN_FLAGS]
    jobs = sweep_jobs(plain) if multirun else None
    first = jobs[0][0] if jobs and jobs[0] else plain  # a sweep's values ("seed=0,1") compose one job at a time
    try:
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            cfg = compose(config_name="train", overrides=first, return_hydra_config=True)
            folder = str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
            given = _value_of(overrides, "paths.output_dir") is not None
            output_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False) if given else None
    except (HydraException, OmegaConfBaseException, yaml.YAMLError):
        return None  # the caller reports it
    return Path(folder), multirun, None if output_dir is None else str(output_dir)


def run_folder_problem(overrides: list[str], planned: tuple[Path, bool, str | None] | None) -> str | None:
    """Why the run folder Hydra is about to make for `overrides` (`planned_folder`'s answer, `planned`), or the
    `paths.output_dir` given, cannot be made, as one line; None where they can, or where no folder is planned."""
    if planned is None:
        return None
    folder, multirun, output_dir = planned
    if output_dir is not None:  # where the checkpoints go, as composed (quotes and all resolved)
        problem = folder_problem(Path(output_dir))
        if problem is not None:
            return f"paths.output_dir={_value_of(overrides, 'paths.output_dir')}: {problem}"
    problem = folder_problem(folder)
    if problem is None:
        return None
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = _value_of(overrides, key)
    if given is None:
        return f"the run folder {folder}: {problem}; choose another with {key}=DIR"
    return f"{key}={given}: {problem}"
