"""Turning input paths into stylised output files: planning, batching, post-processing."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from stylenet.errors import StylenetError
from stylenet.imageio import IMAGE_SUFFIXES, UnreadableImageError, list_images, open_rgb, to_array, to_tensor
from stylenet.inference.global_norm import whole_image_statistics
from stylenet.inference.model import Stylizer
from stylenet.inference.postprocess import blend, preserve_color
from stylenet.inference.tiling import stylize_tiled
from stylenet.inference.video import VIDEO_SUFFIXES, stylize_video


@dataclass(frozen=True)
class Settings:
    size: int | None = None  # longest side to stylise at
    scale: float | None = None
    preserve_color: bool = False
    strength: float = 1.0
    tile: int | None = None
    batch_size: int = 4


@dataclass(frozen=True)
class ImageJob:
    source: Path
    target: Path


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def plan_outputs(inputs: list[Path], output: Path) -> tuple[list[ImageJob], list[ImageJob], list[Path]]:
    """(image jobs, video jobs, missing inputs). Refuses, before any work, to overwrite an input."""
    single_file = len(inputs) == 1 and inputs[0].is_file() and output.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
    jobs: list[ImageJob] = []
    missing: list[Path] = []
    for source in inputs:
        if source.is_dir():
            files = sorted(set(list_images(source)) | {p for p in source.rglob("*") if _is_video(p) and p.is_file()})
            jobs += [ImageJob(f, output / source.resolve().name / f.relative_to(source)) for f in files]
        elif source.is_file():
            jobs.append(ImageJob(source, output if single_file else output / source.name))
        else:
            missing.append(source)
    sources = {job.source.resolve() for job in jobs}
    for job in jobs:
        if job.target.resolve() in sources:
            raise StylenetError(f"output {job.target} would overwrite an input; choose another -o")
    images = [job for job in jobs if not _is_video(job.source)]
    videos = [job for job in jobs if _is_video(job.source)]
    return images, videos, missing


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


def process(stylizer: Stylizer, batch: torch.Tensor, settings: Settings) -> torch.Tensor:
    """Stylise (N, 3, H, W) in [0, 1] with tiling, colour preservation and strength applied."""
    if not settings.tile:
        out = stylizer(batch)
    elif stylizer.network is not None:
        tiler = stylizer.eager()
        with whole_image_statistics(tiler.network, batch):
            out = stylize_tiled(tiler, batch, settings.tile)
    else:  # exported graphs cannot be re-normalised: each tile uses its own statistics
        out = stylize_tiled(stylizer, batch, settings.tile)
    if settings.preserve_color:
        out = preserve_color(batch, out)
    if settings.strength < 1.0:
        out = blend(batch, out, settings.strength)
    return out


def _save(image: torch.Tensor, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if target.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    Image.fromarray(to_array(image)).save(target, **options)


def run_images(stylizer: Stylizer, jobs: list[ImageJob], settings: Settings) -> tuple[int, int]:
    """Stylise every job; a file that cannot be read is reported in one line and skipped.

    Consecutive images of the same working size share a batch. Returns (written, failed).
    """
    written = failed = 0
    pending: list[tuple[ImageJob, torch.Tensor]] = []

    def flush() -> None:
        nonlocal written
        if pending:
            outputs = process(stylizer, torch.stack([t for _, t in pending]), settings)
            for (job, _), out in zip(pending, outputs, strict=True):
                _save(out, job.target)
                written += 1
            pending.clear()

    for job in tqdm(jobs, desc="stylising", unit="image", disable=len(jobs) < 2):
        try:
            image = to_tensor(open_rgb(job.source))
        except (UnreadableImageError, OSError) as error:
            tqdm.write(f"skipped {job.source}: {error}", file=sys.stderr)
            failed += 1
            continue
        image = resize(image.unsqueeze(0), working_size(*image.shape[-2:], settings))[0]
        if pending and (pending[0][1].shape != image.shape or len(pending) == settings.batch_size):
            flush()
        pending.append((job, image))
    flush()
    return written, failed


def run_video(stylizer: Stylizer, job: ImageJob, settings: Settings) -> int:
    """Stylise a video frame by frame; output keeps the source's resolution, rate and frame count."""
    with tqdm(desc=job.source.name, unit="frame") as bar:

        def frames(batch: list[np.ndarray]) -> list[np.ndarray]:
            tensors = torch.stack([to_tensor(f) for f in batch])  # (N, 3, H, W)
            full = tuple(tensors.shape[-2:])
            out = process(stylizer, resize(tensors, working_size(*full, settings)), settings)
            return [to_array(o) for o in resize(out, full)]

        return stylize_video(job.source, job.target, frames, settings.batch_size, lambda n: bar.update(n - bar.n))
