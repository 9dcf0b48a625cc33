"""Where each input of `stylenet stylize` goes: output paths planned and checked before any work."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from stylenet.errors import StylenetError
from stylenet.imageio import IMAGE_SUFFIXES
from stylenet.inference.video import VIDEO_SUFFIXES


@dataclass(frozen=True)
class ImageJob:
    source: Path
    target: Path


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def not_a_file(path: Path) -> str | None:
    """What `path` (or what it links to) is where not a file or folder: "a pipe", "a socket", "a device"; else None.

    Told from its metadata alone: opening a pipe to look would wait, forever, for something to write to it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def _why_unusable(path: Path) -> str:
    """Why `path`, neither a file nor a folder, yields nothing: the end of its "skipped" line."""
    kind = not_a_file(path)
    if kind == "a pipe":  # process substitution, <(...), gives one: its bytes can go to a file instead
        return "a pipe, not an image or video file; save what comes through it to a file first"
    if kind:
        return f"{kind}, not an image or video file"
    if path.is_symlink() and not path.exists():
        return f"a broken link, to {os.readlink(path)}"
    return "no such file or folder"


def _folder_inputs(folder: Path, leave_out: set[Path]) -> tuple[list[Path], list[str]]:
    """The image and video files under `folder`, and a line for each entry named as one that is not a file.

    Linked subfolders are searched as any other (the outputs mirror the tree as it is seen), except a link
    back to a folder above it, which would be searched forever; folders in `leave_out` (resolved) are not."""
    files: list[Path] = []
    unusable: list[Path] = []
    lines: list[str] = []
    pending: list[tuple[Path, frozenset[Path]]] = [(folder, frozenset())]
    while pending:
        current, above = pending.pop()
        real = current.resolve()
        if real in above or real in leave_out:
            continue
        try:
            with os.scandir(current) as listing:
                entries = [Path(entry.path) for entry in listing]
        except OSError as error:  # an unreadable subfolder is said, not passed over
            lines.append(f"skipped {current}: cannot list this folder ({error.strerror or error})")
            continue
        for path in entries:
            try:
                if path.is_dir():
                    pending.append((path, above | {real}))
                elif path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    (files if path.is_file() else unusable).append(path)
            except OSError as error:
                lines.append(f"skipped {path}: cannot read ({error.strerror or error})")
    lines += [f"skipped {path}: {_why_unusable(path)}" for path in sorted(unusable)]
    return sorted(files), lines


def _check_output(inputs: list[Path], output: Path, folder: bool = False) -> bool:
    """Whether `output` names one file (else it is a folder); a name that can be neither is refused.

    `folder`: `output` was named as a folder (with a trailing slash), whatever its suffix."""
    suffix = output.suffix.lower()
    if folder or not suffix or output.is_dir():
        return False
    if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise StylenetError(
            f"-o {output}: {suffix} is neither an image nor a video suffix; "
            f"name a folder, or a file ending in one of {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}"
        )
    if len(inputs) != 1 or inputs[0].is_dir():
        given = f"{len(inputs)} inputs were" if len(inputs) != 1 else f"the folder {inputs[0]} was"
        raise StylenetError(f"-o {output} names one file, but {given} given; name a folder instead")
    if inputs[0].is_file() and is_video(inputs[0]) != (suffix in VIDEO_SUFFIXES):
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


def plan_outputs(
    inputs: list[Path], output: Path, folder: bool = False
) -> tuple[list[ImageJob], list[ImageJob], list[str]]:
    """(image jobs, video jobs, one line per input, or entry of an input folder, that yields nothing).

    Refuses, before any work, an output that would overwrite an input or another input's output,
    and an `output` that is not a folder yet names a file that cannot be written or cannot take
    every input. `folder`: `output` is a folder whatever its name (it was given with a trailing slash).
    Pipes and devices are never opened: they are named in the lines, as are broken links.
    """
    single_file = _check_output(inputs, output, folder)
    jobs: list[ImageJob] = []
    skipped: list[str] = []
    for source in inputs:
        if source.is_dir():
            mirror = output / source.resolve().name  # where this folder's outputs go
            # Earlier outputs are not inputs: a run again with --overwrite would read them back in.
            leave_out = {output.resolve(), mirror.resolve()} - {source.resolve()}
            files, lines = _folder_inputs(source, leave_out)
            skipped += lines
            if not files and not lines:
                skipped.append(f"skipped {source}: no image or video in this folder")
            jobs += [ImageJob(f, mirror / f.relative_to(source)) for f in files]
        elif source.is_file():
            jobs.append(ImageJob(source, output if single_file else output / _output_name(source)))
        else:
            skipped.append(f"skipped {source}: {_why_unusable(source)}")
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
