"""Where each input of `stylenet stylize` goes: output paths planned and checked before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stylenet.errors import StylenetError
from stylenet.imageio import IMAGE_SUFFIXES, list_images
from stylenet.inference.video import VIDEO_SUFFIXES


@dataclass(frozen=True)
class ImageJob:
    source: Path
    target: Path


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _check_output(inputs: list[Path], output: Path) -> bool:
    """Whether `output` names one file (else it is a folder); a name that can be neither is refused."""
    suffix = output.suffix.lower()
    if not suffix or output.is_dir():
        return False
    if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise StylenetError(
            f"-o {output}: {suffix} is neither an image nor a video suffix; "
            f"name a folder, or a file ending in one of {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}"
        )
    if len(inputs) != 1 or not inputs[0].is_file():
        given = f"{len(inputs)} inputs were" if len(inputs) != 1 else f"the folder {inputs[0]} was"
        raise StylenetError(f"-o {output} names one file, but {given} given; name a folder instead")
    if is_video(inputs[0]) != (suffix in VIDEO_SUFFIXES):
        kind = "a video" if is_video(inputs[0]) else "an image"
        raise StylenetError(f"-o {output}: {inputs[0]} is {kind}; give the output {kind}'s suffix")
    return True


def _output_name(source: Path) -> str:
    """The name an input file's output takes in the output folder: its own, where it can be written as it is.

    An image named without an image suffix (IMG_0001, photo.dat) is still read by its content, but
    its output is written as PNG: the name's suffix is what picks the format it is written in."""
    if source.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        return source.name
    return f"{source.name}.png"  # the whole name kept: photo.v1 and photo.v2 stay two files


def plan_outputs(inputs: list[Path], output: Path) -> tuple[list[ImageJob], list[ImageJob], list[str]]:
    """(image jobs, video jobs, one line per input that yields nothing).

    Refuses, before any work, an output that would overwrite an input or another input's output,
    and an `output` that is not a folder yet names a file that cannot be written or cannot take
    every input.
    """
    single_file = _check_output(inputs, output)
    jobs: list[ImageJob] = []
    skipped: list[str] = []
    for source in inputs:
        if source.is_dir():
            files = sorted(set(list_images(source)) | {p for p in source.rglob("*") if is_video(p) and p.is_file()})
            if not files:
                skipped.append(f"skipped {source}: no image or video in this folder")
            jobs += [ImageJob(f, output / source.resolve().name / f.relative_to(source)) for f in files]
        elif source.is_file():
            jobs.append(ImageJob(source, output if single_file else output / _output_name(source)))
        else:
            skipped.append(f"skipped {source}: no such file or folder")
    jobs = list(dict.fromkeys(jobs))  # an input named twice is stylized once
    sources = {job.source.resolve() for job in jobs}
    written_from: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            raise StylenetError(f"output {job.target} would overwrite an input; choose another -o")
        first = written_from.setdefault(target, job.source)
        if first.resolve() != job.source.resolve():
            raise StylenetError(
                f"{first} and {job.source} would both be written to {job.target}; stylize them into separate -o folders"
            )
    images = [job for job in jobs if not is_video(job.source)]
    videos = [job for job in jobs if is_video(job.source)]
    return images, videos, skipped
