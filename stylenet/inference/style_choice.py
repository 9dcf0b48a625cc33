"""A choice of style for a model holding several: one name, or a blend such as "starry=0.7,wave=0.3".

Weights are relative (they are divided by their sum), so "starry=7,wave=3" is the same blend.
Every mistake is one `ConfigError` line naming the styles the model holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from stylenet.errors import ConfigError

StyleChoice = str | Mapping[str, float] | None


def _held(names: Sequence[str]) -> str:
    return f"this model holds {', '.join(names)}" if names else "this model does not name its style"


def _parse_text(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, equals, weight = part.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(f"style {text!r}: expected NAME or NAME=WEIGHT,NAME=WEIGHT (e.g. starry=0.7,wave=0.3)")
        if equals and not weight.strip():  # "starry=" is a weight left out, not the style alone
            raise ConfigError(f"style {text!r}: the weight of {name!r} is missing after '='")
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ConfigError(f"style {text!r}: the weight of {name!r} is not a number ({weight.strip()!r})") from None
        if name in weights:
            raise ConfigError(f"style {text!r}: {name!r} is named twice")
        weights[name] = value
    bare = [part.strip() for part in text.split(",") if "=" not in part]
    if bare and len(bare) < len(weights):  # "wave=0.2,starry" reads as 0.2 and 0.8, but would be 0.2 and 1
        raise ConfigError(f"style {text!r}: give {bare[0]!r} a weight too, or give none (equal weights)")
    return weights


def style_weights(choice: StyleChoice, names: Sequence[str]) -> torch.Tensor:
    """The weights (S,), summing to 1, that `choice` gives the styles `names` (in the model's order).

    `choice`: None (the first style), a name, "a=0.7,b=0.3", or a mapping {name: weight}."""
    if choice is None:
        return torch.eye(max(1, len(names)))[0]
    if isinstance(choice, str) and choice in names:  # a style's own name, even one like "a=0.3,b=0.7" (a baked blend)
        return torch.eye(len(names))[list(names).index(choice)]
    if not isinstance(choice, (str, Mapping)):
        raise ConfigError(
            f"style must be a name, a blend such as 'starry=0.7,wave=0.3' or a {{name: weight}} mapping, "
            f"not {type(choice).__name__} {choice!r}"
        )
    weights = _parse_text(choice) if isinstance(choice, str) else {str(k): v for k, v in dict(choice).items()}
    if not weights:
        raise ConfigError(f"style {{}}: name at least one style; {_held(names)}")
    unknown = [name for name in weights if name not in names]
    if unknown:
        raise ConfigError(f"unknown style {unknown[0]!r}: {_held(names)}")
    for name, value in weights.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"style weight of {name!r} must be a number >= 0, not {value!r}")
    largest = max(weights.values(), default=0)
    if largest <= 0:
        raise ConfigError(f"style weights of {', '.join(weights)} sum to zero: give at least one a positive weight")
    # Scaled by the largest first: weights near the float limit (1e308 each) would sum to inf.
    scaled = {name: value / largest for name, value in weights.items()}
    total = sum(scaled.values())
    return torch.tensor([scaled.get(name, 0.0) / total for name in names], dtype=torch.float32)


def describe_choice(weights: Mapping[str, float] | Any) -> str:
    """ "a=0.7,b=0.3" for a blend, the name alone for a single style."""
    used = {name: float(w) for name, w in dict(weights).items() if w}
    if len(used) == 1:
        return next(iter(used))
    return ",".join(f"{name}={w:g}" for name, w in used.items())


def choice_of(weights: torch.Tensor, names: Sequence[str]) -> str:
    """`describe_choice` of weights (S,) over `names`."""
    return describe_choice({name: round(float(w), 4) for name, w in zip(names, weights, strict=True)})
