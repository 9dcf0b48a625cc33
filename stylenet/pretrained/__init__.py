"""The model shipped inside the package (five paintings in one network), run by name.

`stylenet stylize wave photo.jpg` and `load_model("wave")` resolve here. An argument that is an
existing file is always that file; otherwise a shipped style, a blend of them
("starry=0.7,wave=0.3") or the bundle's own name ("paintings") means the shipped file with that
choice. The names come from the file's own metadata (read once per version of the file), so a
new shipped model needs no code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylenet import git_lfs
from stylenet.checkpoint import CheckpointError, styles_of
from stylenet.errors import ConfigError
from stylenet.inference.style_choice import style_weights

BUNDLE = "paintings"
# The shipped file; tests point this at damaged copies (users have no reason to).
LOCATION = Path(__file__).resolve().parent / f"{BUNDLE}.pt"
PATH_SUFFIXES = (".pt", ".ckpt", ".onnx", ".pt2")


class ShippedModelError(CheckpointError):
    """The shipped model file is missing or damaged."""


@dataclass(frozen=True)
class Shipped:
    """What the shipped file says about itself: its style names (in row order) and its card."""

    path: Path
    styles: tuple[str, ...]
    card: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """A model argument resolved: the file to load, the style choice to run, whether it is the shipped file."""

    path: Path
    style: Any
    shipped: bool


_cache: dict[tuple[str, int, int], Shipped] = {}


def shipped() -> Shipped:
    """The shipped model's names and card; one `ShippedModelError` line if the file is missing or damaged."""
    path = LOCATION
    try:
        stat = path.stat()
    except OSError:
        raise ShippedModelError(f"{path}: the shipped model file is missing; reinstall stylenet") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)  # a replaced file is read again
    if key not in _cache:
        _cache.clear()
        _cache[key] = _read(path)
    return _cache[key]


def _read(path: Path) -> Shipped:
    if git_lfs.is_pointer(path):
        raise ShippedModelError(
            f"{path} is a Git LFS pointer, not the model: {git_lfs.FETCH}, or reinstall stylenet from a release"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        names = tuple(str(style["name"]) for style in styles_of(payload))
    except Exception:  # truncated download, damaged zip, a file of something else
        raise ShippedModelError(
            f"{path}: the shipped model file is truncated or unreadable; reinstall stylenet"
        ) from None
    if not names:
        raise ShippedModelError(f"{path}: the shipped model file names no styles; reinstall stylenet")
    card = payload.get("card") if isinstance(payload.get("card"), dict) else {}
    return Shipped(path, names, card)


def chosen_names(text: str) -> list[str]:
    """The style names in a choice such as "wave" or "starry=0.7,wave=0.3" (weights are checked on loading)."""
    return [part.partition("=")[0].strip() for part in text.split(",")]


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.lower().endswith(PATH_SUFFIXES)


def resolve(model: str | Path, style: Any = None) -> Resolved:
    """The file and style choice that a model argument means: an existing file as it is, else a shipped name.

    A shipped name or blend given as `model` is the choice; a different `style` beside it is one ConfigError
    line. Anything else is one CheckpointError line listing the shipped styles."""
    text = str(model)
    if Path(text).is_file():
        return Resolved(Path(text), style, False)
    if _looks_like_path(text):
        raise CheckpointError(
            f"{text}: " + ("a folder, not a model file" if Path(text).is_dir() else "no such model file")
        )
    bundle = shipped()
    if text == BUNDLE:
        return Resolved(bundle.path, style, True)
    if not all(name in bundle.styles for name in chosen_names(text)):
        raise CheckpointError(
            f"no model file or shipped style named {text}; shipped styles: {', '.join(bundle.styles)} "
            f"(or {BUNDLE} with a style choice)"
        )
    if style is not None and style != text:
        _refuse_second_choice(text, style, bundle.styles)
    return Resolved(bundle.path, text, True)


def _refuse_second_choice(text: str, style: Any, names: list[str]) -> None:
    """One ConfigError line for a style choice beside the shipped name `text`: the way to run it where it is a
    choice of the shipped model, the choices there are where it is not."""
    try:
        style_weights(style, names)
    except ConfigError as error:
        held = ", ".join(names)
        reason = str(error).removeprefix(f"style {style!r}: ")
        among = "" if held in reason else f" (NAME: {held})"
        raise ConfigError(
            f"{text} is a shipped style, and --style {style} is no choice of the shipped model ({reason}): "
            f"give {text} alone, or {BUNDLE} --style NAME{among}"
        ) from None
    raise ConfigError(
        f"{text} names a shipped style and style {style} another: give one choice (the name alone, or "
        f"{BUNDLE} with style {style})"
    )


def kept_models_dir() -> Path:
    """Where training keeps models by default (`paths.kept_models_dir`): the place a user's own NAME.pt sits."""
    from omegaconf import OmegaConf

    from stylenet.config_files import config_dir

    try:
        return Path(str(OmegaConf.load(config_dir() / "paths" / "default.yaml").kept_models_dir))
    except Exception:  # no configs or an interpolated value: the documented default
        return Path("checkpoints")


def shadowed_files(model: str | Path) -> list[Path]:
    """A user's own model files named like the shipped style `model` (./NAME.pt, checkpoints/NAME.pt ...).

    The shipped style runs; these are used only by their path. Empty where `model` is a file or not a shipped
    name, or the shipped file cannot be read (loading it says why)."""
    text = str(model)
    if Path(text).is_file() or _looks_like_path(text):
        return []
    try:
        names = shipped().styles
    except CheckpointError:
        return []
    if text != BUNDLE and text not in names:
        return []
    places = (Path("."), kept_models_dir())
    return [
        place / f"{text}{suffix}"
        for place in places
        for suffix in PATH_SUFFIXES
        if (place / f"{text}{suffix}").is_file()
    ]


def shadow_note(model: str | Path) -> str | None:
    """One line for a shipped name that a user's file of the same name might be mistaken for; None if none."""
    files = shadowed_files(model)
    if not files:
        return None
    listed = ", ".join(str(f) for f in files)
    return f"note: {model} runs the shipped model; your {listed} is used only when given by its path (e.g. {files[0]})"
