"""Reading files that `torch.save` wrote, from sources that need not be trusted.

Weights only (`weights_only=True`): a file whose pickle names anything but tensors and plain values
is refused instead of run. Shared by model files and the loss network's weights.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch


def load_weights_only(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def why_unreadable(path: Path, error: Exception) -> str:
    """Why `torch.load` refused the file at `path`, in a few words. Never torch's own message: it suggests
    loading the file again without `weights_only`, which runs whatever code a malicious file holds."""
    if not zipfile.is_zipfile(path):  # what torch.save writes; a cut-off one has lost its directory
        return "damaged, truncated or not a file torch wrote"
    if isinstance(error, pickle.UnpicklingError):
        return "refused: it holds more than weights and plain values, which loading could run as code"
    return f"damaged ({error.__class__.__name__})"
