"""Files written whole or not at all: a failed write never leaves a truncated file, nor loses the one it replaces."""

from __future__ import annotations

import errno
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to, with its suffix (writers choose their format by it): it
    replaces `target` when the block ends without an error, and is removed when it does not."""
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_through_memory(path: Path, save: Callable[[io.BytesIO], object]) -> None:
    """`save(buffer)` into memory, then the bytes to `path`. torch's own file writers meet a full disk with a
    RuntimeError from their C++ code (`torch.save`) or by aborting the whole process (`torch.export.save`,
    AOTInductor's packager); Python's write raises the OSError that says why, which callers can report."""
    buffer = io.BytesIO()
    save(buffer)
    path.write_bytes(buffer.getbuffer())


def why_unwritable(folder: Path) -> str | None:
    """Why no file can be created in the existing `folder`, or None where one can.

    Writing a file is the one test that holds everywhere: permission bits say nothing of a read-only
    mount, and access() answers for the real user, not for the one this process runs as."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as error:
        if error.errno == errno.ENOENT and folder.is_dir():
            return "it takes no new files"  # /proc and the like: "No such file or directory" would mislead
        return error.strerror or str(error)


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be made, or written in where it exists, as "X is a file, not a folder" or "cannot
    write in X (why)", X being the nearest of it and its parents that exists; None where it can."""
    existing = folder.absolute()  # a relative path's last parent is ".", which names nothing
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    reason = why_unwritable(existing)
    return None if reason is None else f"cannot write in {existing} ({reason})"
