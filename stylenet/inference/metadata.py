"""What every exported or saved model says about itself, in every format."""

from __future__ import annotations

import json
from typing import Any

# The tensor convention of every stylenet model, stored beside it so other runtimes need no docs.
INPUT_CONVENTION = "float32 RGB, NCHW, values in [0, 1]; output the same shape and range"
METADATA_KEY = "stylenet"


def describe(metadata: dict[str, Any]) -> str:
    """Metadata as one JSON string (ONNX metadata_props and .pt2 extra files hold strings)."""
    return json.dumps({**metadata, "input": INPUT_CONVENTION}, sort_keys=True)


def parse(text: str) -> dict[str, Any]:
    return json.loads(text)


def num_styles(metadata: dict[str, Any]) -> int:
    """How many styles the network a model file describes holds (1 where it does not say)."""
    return int((metadata.get("model") or {}).get("num_styles", 1))
