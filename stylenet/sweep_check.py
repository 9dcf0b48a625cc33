"""Every job of a sweep (`python train.py -m a=1,2 b=x,y`) checked before the first one trains.

Hydra runs a sweep's jobs one after another, each checking its own settings as it starts: a mistake in
the last job (`trainer.max_steps=1000,0`) was found only after the others had trained, and left a
folder behind. The jobs are made here as Hydra's basic sweeper makes them, and each is composed and
checked with the same checks a run makes before loading anything.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from stylenet.errors import StylenetError

MULTIRUN_FLAGS = ("-m", "--multirun")


def sweep_jobs(overrides: list[str]) -> tuple[list[list[str]], list[str]] | None:
    """Each job's overrides, as the basic sweeper makes them, and the keys the sweep varies; None where Hydra
    would not parse `overrides` (it then says why itself)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the sweeper train.py runs under
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except HydraException:
        return None
    return jobs, [override.key_or_group for override in parsed if override.is_sweep_override()]


def first_bad_job(overrides: list[str], configs: Path, check: Callable[[DictConfig, list[str]], None]) -> str | None:
    """The first job of the sweep in `overrides` that `check(cfg, job_overrides)` refuses, as one line naming
    its settings; None where every job passes, or where this is no sweep of the basic sweeper's."""
    if not any(flag in overrides for flag in MULTIRUN_FLAGS):
        return None
    plain = [arg for arg in overrides if arg not in MULTIRUN_FLAGS]
    if any(arg.startswith("-") or arg.lstrip("+~").startswith(("hydra/sweeper", "hydra.sweeper")) for arg in plain):
        return None  # other options, or another sweeper: its jobs are its own
    made = sweep_jobs(plain)
    if made is None or len(made[0]) < 2:  # a single job is checked as it starts
        return None
    jobs, varied = made
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with tempfile.TemporaryDirectory() as scratch, initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        for number, job in enumerate(jobs):
            settings = [arg for arg in job if not arg.lstrip("+~").startswith(("hydra.", "hydra/"))]
            # Hydra's run folder is known only once a job runs: a scratch one stands in for the check.
            settings.append(f"paths.output_dir={Path(scratch) / str(number)}")
            named = " ".join(arg for arg in job if arg.lstrip("+~").split("=", 1)[0] in varied)
            try:
                check(compose(config_name="train", overrides=settings), job)
            except (HydraException, OmegaConfBaseException):
                return None  # Hydra reports it as the job starts, in its own words
            except StylenetError as error:
                return f"job {number} of the sweep ({named}): {error}; no job was started"
    return None
