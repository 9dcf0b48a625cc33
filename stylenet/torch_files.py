"""Why `torch.load(..., weights_only=True)` refused a file, for the one-line errors of model files and
the loss network's weights: a file whose pickle names anything but tensors and plain values is refused
instead of run, and the user is told so, not told how to load it unsafely. And a file whose contents
would unpack to far more than its size is refused before it is read.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path


def why_unreadable(path: Path, error: Exception) -> str:
    """Why `torch.load` refused the file at `path`, in a few words. Never torch's own message: it suggests
    loading the file again without `weights_only`, which runs whatever code a malicious file holds."""
    refused = "refused: it holds more than weights and plain values, which loading could run as code"
    # torch's older format (before its zip archive) is a plain pickle: one naming code is refused, not damaged.
    if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
        return refused
    if not zipfile.is_zipfile(path):  # what torch.save writes; a cut-off one has lost its directory
        return "damaged, truncated or not a file torch wrote"
    if isinstance(error, pickle.UnpicklingError):
        return refused
    return f"damaged ({error.__class__.__name__})"


# torch.save, torch.export.save and AOTInductor store their members uncompressed, so a file they wrote
# unpacks to about its own size; a compressed member is what lets 1 MB unpack to 1 GB before any check.
EXPANSION_LIMIT = 2
EXPANSION_SLACK = 1 << 20


def expansion_problem(path: Path) -> str | None:
    """Why the zip archive at `path` would take far more memory to read than its size; None where it would
    not, or where it is no readable archive (its loader then says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(member.file_size for member in archive.infolist())
        on_disk = path.stat().st_size
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if declared <= EXPANSION_LIMIT * on_disk + EXPANSION_SLACK:
        return None
    return (
        f"its contents would unpack to {declared / 1e6:,.0f} MB from {on_disk / 1e6:,.1f} MB on disk, "
        "which no file torch writes does"
    )


def is_bare_pickle(path: Path) -> bool:
    """Whether `path` is a pickle of protocol 3 or later outside torch's zip archive: never a file torch
    wrote (its old format starts with protocol 2), and one that torch would read with a warning first."""
    try:
        with path.open("rb") as file:
            start = file.read(2)
    except OSError:
        return False
    return len(start) == 2 and start[0] == 0x80 and start[1] >= 3 and not zipfile.is_zipfile(path)
