"""Git LFS pointers: what a clone without Git LFS holds in place of each large file it tracks."""

from __future__ import annotations

from pathlib import Path

POINTER_START = b"version https://git-lfs"  # how every pointer file begins
FETCH = "run `git lfs install && git lfs pull` in the repository"  # what replaces pointers with the files


def is_pointer(path: Path) -> bool:
    """True where `path` holds a pointer instead of the file; False for a missing or unreadable path
    (its reader says which)."""
    try:
        with path.open("rb") as file:
            return file.read(len(POINTER_START)) == POINTER_START
    except OSError:
        return False
