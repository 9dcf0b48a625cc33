"""Why `torch.load(..., weights_only=True)` refused a file, for the one-line errors of model files and
the loss network's weights: a file whose pickle names anything but tensors and plain values is refused
instead of run, and the user is told so, not told how to load it unsafely.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path


def why_unreadable(path: Path, error: Exception) -> str:
    """Why `torch.load` refused the file at `path`, in a few words. Never torch's own message: it suggests
    loading the file again without `weights_only`, which runs whatever code a malicious file holds."""
    if not zipfile.is_zipfile(path):  # what torch.save writes; a cut-off one has lost its directory
        return "damaged, truncated or not a file torch wrote"
    if isinstance(error, pickle.UnpicklingError):
        return "refused: it holds more than weights and plain values, which loading could run as code"
    return f"damaged ({error.__class__.__name__})"
