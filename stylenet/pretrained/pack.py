"""Packing a trained model for shipping: float16 weights and a model card in its metadata.

float16 halves the file (the shipped model lives in the package); loading turns the weights back
into float32 (`stylenet.checkpoint.build_network`), so inference is unchanged but for the rounding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from stylenet.checkpoint import FORMAT, load_inference_checkpoint, write_atomically
from stylenet.errors import ConfigError
from stylenet.pretrained.card import build_card


def read_card(path: str | Path) -> dict[str, Any]:
    """The card YAML at `path` as a dict; one ConfigError line if it is missing or not a mapping."""
    try:
        given = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: not a readable card ({error.__class__.__name__})") from None
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: a card must be a mapping (name, paintings, training)")
    return given


def read_report(path: str | Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable evaluation report ({error.__class__.__name__})") from None


def pack(model: str | Path, card: str | Path, out: str | Path, report: str | Path | None = None) -> dict[str, Any]:
    """Writes `model` (an inference checkpoint) to `out` with float16 weights and its card; returns the card."""
    network, metadata = load_inference_checkpoint(model)
    built = build_card(metadata, read_card(card), read_report(report))
    state = {k: v.detach().half() if v.is_floating_point() else v for k, v in network.state_dict().items()}
    payload = {"format": FORMAT, **metadata, "model": network.config.to_dict(), "state_dict": state, "card": built}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(payload, out)  # never a half-written shipped model
    return built
