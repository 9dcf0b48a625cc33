"""`trainer.devices` against what this machine has: refused in one line before Lightning refuses it in a
traceback, and a warning line where training processes would share the CPU's cores."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from stylenet.errors import ConfigError

log = logging.getLogger(__name__)


def _devices(value: Any) -> int | str | list[int]:
    """`trainer.devices` as Lightning reads it: a count (-1: every GPU), "auto", or GPU indices ([0,1] or "0,1")."""
    hint = (
        "trainer.devices must be a whole number >= 1, -1 (every GPU), auto, or a list of GPU indices such as "
        f"[0,1], not {value!r}"
    )
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return text
        if not re.fullmatch(r"-1|\d+|\d+(,\d+)*,?", text):
            raise ConfigError(hint)
        value = [int(i) for i in text.split(",") if i] if "," in text else int(text)
    if isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        indices = list(value)
        if all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
            if len(set(indices)) == len(indices):
                return indices
    raise ConfigError(hint)


def _gpus_here() -> int:
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1 if torch.backends.mps.is_available() else 0  # Apple's GPU is one device


def _cpu_cores() -> int:
    """The cores this process may run on: its affinity set (a container's or taskset's share) where the OS has one."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_devices(trainer: Mapping[str, Any]) -> None:
    """`trainer.devices` against what this machine has, before Lightning refuses it in a traceback or
    starts more CPU processes than there are cores."""
    devices = _devices(trainer.get("devices", "auto"))
    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):  # an object, mps or tpu: Lightning's to judge
        return
    gpus = _gpus_here()
    if accelerator != "cpu" and gpus:
        wanted = devices if isinstance(devices, list) else list(range(devices)) if isinstance(devices, int) else []
        if any(index >= gpus for index in wanted):
            raise ConfigError(f"trainer.devices={devices}: torch sees {gpus} GPU(s) here (indices 0 to {gpus - 1})")
        return
    why = "torch sees no GPU here" if not gpus else "trainer.accelerator=cpu"
    if devices == -1 or isinstance(devices, list):
        raise ConfigError(
            f"trainer.devices={devices} selects GPUs, but {why}: on the CPU give a number of processes, "
            "e.g. trainer.devices=1"
        )
    processes = 1 if devices == "auto" else devices  # Lightning's auto on the CPU: one process
    cores = _cpu_cores()
    from pytorch_lightning.utilities import rank_zero_only  # here: model files load through this module

    if processes > cores:  # it runs (Lightning allows it), only slower than fewer processes would
        rank_zero_only(log.warning)(
            "trainer.devices=%d starts %d training processes on the CPU (%s), which has %d core(s) for this run: "
            "each gets less than a core; trainer.devices=%d or fewer trains faster",
            processes,
            processes,
            why,
            cores,
            cores,
        )
    elif processes > 1 and not gpus and accelerator == "auto":  # chose auto, perhaps expecting GPUs
        rank_zero_only(log.warning)(
            "trainer.devices=%d: torch sees no GPU here, so the %d processes train on the CPU", processes, processes
        )
