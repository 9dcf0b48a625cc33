"""Compact inference checkpoints: network weights plus what is needed to rebuild and describe it.

A plain dict of tensors, strings and numbers, so `torch.load(..., weights_only=True)` reads
it without unpickling arbitrary objects. Importing this never pulls in training code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from stylenet.errors import StylenetError
from stylenet.networks.transformer import TransformerNet

log = logging.getLogger(__name__)

FORMAT = "stylenet.inference/1"


class CheckpointError(StylenetError):
    """A file that is not a readable stylenet model."""


def save_inference_checkpoint(path: str | Path, network: TransformerNet, metadata: dict[str, Any]) -> Path:
    """Write `network` and `metadata` (style, steps, val losses...) to `path`.

    An existing file at `path` is moved aside to `<stem>.<its mtime>.pt`, never overwritten.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
        backup = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
        counter = 1
        while backup.exists():
            backup = path.with_name(f"{path.stem}.{stamp}-{counter}{path.suffix}")
            counter += 1
        path.rename(backup)
        log.warning("kept the previous %s as %s", path, backup)
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    payload = {"format": FORMAT, "model": network.config.to_dict(), "state_dict": state, **metadata}
    # Write then rename, so a crash mid-write never leaves a truncated model under `path`.
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    return path


def load_inference_checkpoint(path: str | Path) -> tuple[TransformerNet, dict[str, Any]]:
    """The network (in eval mode) and the metadata stored at `path`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle refused, not a torch file at all
        raise CheckpointError(f"{path}: not a readable stylenet model ({error.__class__.__name__})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a stylenet inference checkpoint (expected format {FORMAT})")
    network = TransformerNet(**payload["model"])
    network.load_state_dict(payload["state_dict"])
    metadata = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    return network.eval(), metadata
