"""Turning input paths into stylized output files: memory planning, batching, post-processing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from stylenet.atomic_write import folder_problem, replacing
from stylenet.errors import StylenetError
from stylenet.imageio import UnreadableImageError, image_size, is_animated, open_rgb, to_array, to_tensor
from stylenet.inference.memory import (
    LIMIT_NAME,
    SHRINK_HINT,
    MemoryLimitError,
    format_size,
    image_bytes,
    memory_limit,
    tiled_bytes,
)
from stylenet.inference.model import Stylizer
from stylenet.inference.postprocess import blend, preserve_color
from stylenet.inference.stylizer import MIN_SIDE
from stylenet.inference.targets import ImageJob, plan_outputs
from stylenet.inference.video import probe_video, stylize_video

__all__ = [
    "ImageJob",
    "MemoryPlan",
    "Settings",
    "TooSmallError",
    "check_folder",
    "plan_jobs",
    "plan_memory",
    "plan_outputs",
    "process",
    "read_image",
    "refuse_existing",
    "run_images",
    "run_video",
]


class TooSmallError(StylenetError):
    """An image or video smaller than the network's smallest input at the size it would be stylized at."""


@dataclass(frozen=True)
class Settings:
    size: int | None = None  # longest side to stylize at
    scale: float | None = None
    preserve_color: bool = False
    strength: float = 1.0
    tile: int | None = None  # None: tiles only where memory requires
    batch_size: int = 4
    max_memory: int | None = None  # bytes; None: a share of the free memory (`memory.memory_limit`)


@dataclass(frozen=True)
class MemoryPlan:
    tile: int | None  # None: whole images
    batch: int  # images of this size that fit at once


def check_folder(output: Path, folder: Path) -> None:
    """Refuses `folder` (what `-o output` writes into) where it, or the first of its parents that exists, is a file
    or a folder this process cannot write in: found before any work, not after all of it."""
    if folder == output and output.exists() and not output.is_dir():
        raise StylenetError(f"-o {output} is an existing file, not a folder; name a folder for the outputs")
    problem = folder_problem(folder)
    if problem:
        raise StylenetError(f"-o {output}: {problem}; choose another -o")


def refuse_existing(targets: list[Path]) -> None:
    """One line naming the first of `targets` that exists, and how many do, unless none does.

    A folder in an output's place is refused the same way; `--overwrite` lets files be replaced, not folders."""
    folders = [target for target in targets if target.is_dir()]
    if folders:
        raise StylenetError(f"output {folders[0]} is an existing folder; choose another -o")
    existing = [target for target in targets if target.exists() or target.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more of the {len(targets)} outputs)" if len(existing) > 1 else ""
        them = "them" if len(existing) > 1 else "it"
        raise StylenetError(
            f"output {existing[0]} already exists{more}; pass --overwrite to replace {them}, or choose another -o"
        )


def plan_jobs(
    inputs: list[Path], output: Path, overwrite: bool = False, folder: bool = False
) -> tuple[list[ImageJob], list[ImageJob], list[str]]:
    """`plan_outputs` for `stylenet stylize`, refusing besides, before any work: a missing input named with one
    output file, an `output` folder that is a file, and outputs that exist already (unless `overwrite`).
    `folder`: `output` was named as a folder (`-o out/v1.0/`), whatever its suffix."""
    one_file = not folder and bool(output.suffix) and not output.is_dir()  # as plan_outputs decides
    if one_file and len(inputs) == 1 and not inputs[0].exists():
        raise StylenetError(f"{inputs[0]}: no such file or folder")
    check_folder(output, output.parent if one_file else output)
    images, videos, skipped = plan_outputs(inputs, output, folder)
    for place in sorted({job.target.parent for job in images + videos}):  # a folder's subfolders, too
        check_folder(output, place)
    if not overwrite:
        refuse_existing([job.target for job in images + videos])
    return images, videos, skipped


def check_size(name: str, source: tuple[int, int], size: tuple[int, int]) -> None:
    """Raises `TooSmallError` where an image of `source` (H, W) px, stylized at `size`, is below the minimum."""
    if min(size) < MIN_SIDE:
        raise TooSmallError(
            f"{name}: {source[1]}x{source[0]} px is smaller than {MIN_SIDE}x{MIN_SIDE}, the network's smallest input"
        )


def working_size(height: int, width: int, settings: Settings) -> tuple[int, int]:
    if settings.size:
        factor = settings.size / max(height, width)
    elif settings.scale:
        factor = settings.scale
    else:
        return height, width
    return max(8, round(height * factor)), max(8, round(width * factor))


def resize(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(batch.shape[-2:]) == size:
        return batch
    return F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _check_forced_tile(
    stylizer: Stylizer, size: tuple[int, int], tile: int, room: float, name: str, reserved: float
) -> None:
    """Refuses a --tile whose tiles would not fit the memory allowed: a tile the user chose is kept as
    it is (not shrunk, as an automatic one is), so one too large for the limit is said before work."""
    per_pixel = stylizer.activation_bytes_per_pixel((1, 3, *size))
    whole = tile >= max(size)
    need = (
        per_pixel * size[0] * size[1] if whole else tiled_bytes(per_pixel, 1, *size, tile, stylizer.network is not None)
    )
    if need > room:
        how = "untiled" if whole else f"in {tile} px tiles"
        raise MemoryLimitError(
            f"{name} ({size[1]}x{size[0]} px) needs about {format_size(need + reserved)} {how}, over the "
            f"{format_size(room + reserved)} allowed (--max-memory); give a smaller --tile, or none to have one chosen"
        )


def plan_memory(
    stylizer: Stylizer, source: tuple[int, int], size: tuple[int, int], settings: Settings, name: str
) -> MemoryPlan:
    """How to stylize an image of `source` (H, W) px at `size` (H, W) within the memory limit.

    Decided from the sizes alone, before anything is decoded. Raises `MemoryLimitError` (one
    line) where not even the image's own pixels fit; picks tiles where the network's would not.
    """
    limit = memory_limit(settings.max_memory, "cpu")
    pixels = image_bytes(source[0] * source[1], size[0] * size[1], settings.preserve_color, settings.strength < 1)
    if pixels > limit:
        stylized_at = f", stylized at {size[1]}x{size[0]}" if size != source else ""
        raise MemoryLimitError(
            f"{name} ({source[1]}x{source[0]} px{stylized_at}) needs about {format_size(pixels)} for its pixels "
            f"alone, over the {format_size(limit)} allowed {LIMIT_NAME}; {SHRINK_HINT}"
        )
    # On a GPU the network has the device's memory; on the CPU, what the pixels leave of the limit.
    on_cpu = stylizer.device.type == "cpu"
    room = limit - pixels if on_cpu else memory_limit(settings.max_memory, stylizer.device)
    if settings.tile:
        _check_forced_tile(stylizer, size, settings.tile, room, name, reserved=pixels if on_cpu else 0)
    tile = stylizer.plan_tile((1, 3, *size), settings.tile or "auto", room, name=name, reserved=pixels if on_cpu else 0)
    if tile and tile < max(size):
        return MemoryPlan(tile, 1)
    network = stylizer.activation_bytes_per_pixel((1, 3, *size)) * size[0] * size[1]
    fits = limit // (pixels + network) if on_cpu else min(limit // pixels, room // network)
    return MemoryPlan(None, int(max(1, min(settings.batch_size, fits))))


def process(
    stylizer: Stylizer, batch: torch.Tensor, settings: Settings, tile: int | str | None = "auto"
) -> torch.Tensor:
    """Stylize (N, 3, H, W) in [0, 1], in tiles where `tile` says so (`Stylizer.stylize_tensor`),
    with colour preservation and strength applied."""
    out = stylizer.stylize_tensor(batch, tile)
    if settings.preserve_color:
        out = preserve_color(batch, out)
    if settings.strength < 1.0:
        out = blend(batch, out, settings.strength)
    return out


def read_image(stylizer: Stylizer, source: Path, settings: Settings) -> tuple[torch.Tensor, MemoryPlan]:
    """The image at `source` as (3, H, W) at its working size, and the memory plan to stylize it with.

    The plan is made from the header alone, so an image too large to hold is refused before it is
    decoded. Raises `UnreadableImageError`, `TooSmallError`, `MemoryLimitError` or `OSError`, each one line."""
    width, height = image_size(source)
    size = working_size(height, width, settings)
    check_size(str(source), (height, width), size)
    plan = plan_memory(stylizer, (height, width), size, settings, str(source))
    image = to_tensor(open_rgb(source))
    return resize(image.unsqueeze(0), size)[0], plan


def _save(image: torch.Tensor, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if target.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    with replacing(target) as partial:  # a failed write (a full disk) leaves a file it replaces (--overwrite) intact
        Image.fromarray(to_array(image)).save(partial, **options)


def run_images(stylizer: Stylizer, jobs: list[ImageJob], settings: Settings) -> tuple[int, int]:
    """Stylize every job; a file that cannot be read or held is reported in one line and skipped.

    Consecutive images of the same working size share a batch, as many as memory allows.
    Returns (written, failed).
    """
    written = failed = 0
    pending: list[tuple[ImageJob, torch.Tensor]] = []
    plan = MemoryPlan(None, settings.batch_size)

    # Counts images done, not read: reading runs ahead of the batch that stylizes them.
    bar = tqdm(total=len(jobs), desc="stylizing", unit="image", disable=len(jobs) < 2)

    def flush() -> None:
        nonlocal written, failed
        if pending:
            outputs = process(stylizer, torch.stack([t for _, t in pending]), settings, plan.tile)
            for (job, _), out in zip(pending, outputs, strict=True):
                try:
                    _save(out, job.target)
                    written += 1
                except OSError as error:  # a full disk or an unwritable target: the other outputs still go
                    tqdm.write(
                        f"skipped {job.source}: cannot write {job.target} ({error.strerror or error})", file=sys.stderr
                    )
                    failed += 1
                bar.update(1)
            pending.clear()

    for job in jobs:
        try:
            image, job_plan = read_image(stylizer, job.source, settings)
        except (UnreadableImageError, TooSmallError, MemoryLimitError, OSError) as error:
            message = str(error) if str(error).startswith(str(job.source)) else f"{job.source}: {error}"
            tqdm.write(f"skipped {message}", file=sys.stderr)
            failed += 1
            bar.update(1)
            continue
        if is_animated(job.source):  # read as a still image: say so rather than drop its other frames unseen
            tqdm.write(f"note: {job.source} holds several frames; only the first is stylized", file=sys.stderr)
        if pending and (pending[0][1].shape != image.shape or len(pending) >= job_plan.batch or job_plan != plan):
            flush()
        plan = job_plan
        pending.append((job, image))
    flush()
    bar.close()
    return written, failed


def run_video(
    stylizer: Stylizer,
    job: ImageJob,
    settings: Settings,
    progress: Callable[[int, int | None], Any] | None = None,
    warn: Callable[[str], Any] | None = None,
) -> int:
    """Stylize a video frame by frame; output keeps the source's resolution, rate, length and audio.

    `progress(frames done, frame count or None)` is called after each batch; default: a tqdm bar. `warn` gets
    the one line saying what of a damaged or cut-off source is missing; default: a "warning:" line on stderr."""
    info = probe_video(job.source)
    full = (info.height, info.width)
    size = working_size(*full, settings)
    check_size(str(job.source), full, size)
    plan = plan_memory(stylizer, full, size, settings, str(job.source))

    def frames(batch: list[np.ndarray]) -> list[np.ndarray]:
        tensors = torch.stack([to_tensor(f) for f in batch])  # (N, 3, H, W)
        out = process(stylizer, resize(tensors, size), settings, plan.tile)
        return [to_array(o) for o in resize(out, full)]

    job.target.parent.mkdir(parents=True, exist_ok=True)  # a folder's videos mirror its tree, as images do
    warn = warn or _print_warning
    if progress is not None:
        return stylize_video(job.source, job.target, frames, plan.batch, lambda n: progress(n, info.frames), warn)
    with tqdm(desc=job.source.name, unit="frame", total=info.frames) as bar:
        return stylize_video(job.source, job.target, frames, plan.batch, lambda n: bar.update(n - bar.n), warn)


def _print_warning(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)  # through tqdm, so that an open progress bar stays whole
