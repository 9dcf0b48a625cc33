"""What a benchmark request is refused for, in one line, before anything is measured.

A run takes minutes: an option that cannot work (an empty backend list, a timeout no measurement
can meet, a size no row can fit in memory) would otherwise show up as a table of skipped rows, and
an output that cannot be written as a traceback after the last measurement, the figures lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylenet.atomic_write import folder_problem
from stylenet.benchmark import BenchmarkError
from stylenet.benchmark.backends import BACKENDS

# The loss networks (VGG16, VGG19) halve an image four times before their deepest layer used:
# under 16 px a side, the fourth pooling is left with no pixels.
MIN_TRAIN_SIZE = 16
# The frame each inference row runs on: 3 channels of float32, made on the host whatever the device.
FRAME_BYTES_PER_PIXEL = 12


def check_request(
    backends: list[str],
    repeats: int,
    train: bool,
    train_steps: int,
    train_size: int,
    train_batch: int,
    child_timeout_s: float,
) -> None:
    """Refuses an empty backend list, counts below 1, a training size the loss network cannot take (where
    training is measured) and a measuring process's timeout that no measurement can meet."""
    if not backends:
        raise BenchmarkError(f"--backends names no backend; choose from {', '.join(BACKENDS)} or all")
    if repeats < 1:
        raise BenchmarkError("--repeats must be >= 1")
    if train and (train_steps < 1 or train_batch < 1):
        raise BenchmarkError("--train-steps and --train-batch must be >= 1")
    if train and train_size < MIN_TRAIN_SIZE:
        raise BenchmarkError(
            f"--train-size {train_size}: the loss network halves a training image four times, so it needs at "
            f"least {MIN_TRAIN_SIZE} px"
        )
    if not child_timeout_s > 0:  # NaN included
        raise BenchmarkError(f"--child-timeout {child_timeout_s:g}: must be a number of seconds above 0")


def check_frames_fit(sizes: list[tuple[int, int]], config: dict[str, Any], device: str = "cpu") -> None:
    """Refuses a (width, height) at which no row can fit: its frame and the leanest row's activations over
    the memory the kernel says is available (`config`: the model's network), or on a GPU its activations over
    all the GPU's memory.

    A floor, so that only sizes that cannot fit are refused: the activations are those of the fast path
    in 16-bit floats (`stylenet.inference.memory.activation_bytes_per_pixel`), the leanest any backend
    takes, or of the reference network where that is leaner, without the estimate's allocator margin."""
    import torch

    from stylenet.inference.memory import MARGIN, activation_bytes_per_pixel, available_memory, format_size

    lean = min(activation_bytes_per_pixel(config, "bf16", fast=True), activation_bytes_per_pixel({}, "fp32", False))
    host = available_memory("cpu")
    # All the GPU holds, not what is free: reading that would start a CUDA context in this process, which
    # would hold GPU memory through every measurement.
    gpu = None if device == "cpu" else torch.cuda.get_device_properties(0).total_memory
    for width, height in sizes:
        frame, activations = FRAME_BYTES_PER_PIXEL * width * height, lean / MARGIN * width * height
        need = frame if gpu is not None else frame + activations
        if host is not None and need > host:
            what = f"its 3x{height}x{width} float32 input" + (" and the network's activations" if gpu is None else "")
            raise BenchmarkError(
                f"--sizes {width}x{height}: a frame needs at least {format_size(need)} ({what}), over the "
                f"{format_size(host)} of memory available; choose a smaller size"
            )
        if gpu is not None and activations > gpu:
            raise BenchmarkError(
                f"--sizes {width}x{height}: a frame needs at least {format_size(activations)} of GPU memory for "
                f"the network's activations, over the {format_size(gpu)} the GPU holds; choose a smaller size"
            )


def check_outputs(outputs: dict[str, Path | None], overwrite: bool) -> None:
    """Refuses, for each option's path (`{"--json": path}`), what would fail or replace a file unasked once the
    figures are in: a folder in its place, a parent that is a file or cannot be written in, two options
    naming one file, and a file that exists already unless `overwrite` (as `stylenet stylize` and `export`)."""
    named: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        same = named.setdefault(path.resolve(), option)
        if same != option:
            raise BenchmarkError(f"{same} and {option} both name {path}; give each its own file")
        if path.is_dir():
            raise BenchmarkError(f"{option} {path} is an existing folder, not a file; name the file to write")
        problem = folder_problem(path.parent)  # the folders below the nearest that exists are made when writing
        if problem:
            raise BenchmarkError(f"{option} {path}: {problem}; choose another path")
        if not overwrite and (path.exists() or path.is_symlink()):
            raise BenchmarkError(
                f"{option} {path} already exists; pass --overwrite to replace it, or choose another path"
            )
