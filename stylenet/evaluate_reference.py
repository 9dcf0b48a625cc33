"""`stylenet evaluate --reference REPORT`: the optimisation results of an earlier report, reused.

The per-image optimisation is the slow half of an evaluation (minutes a photo on a CPU) and
depends only on the loss, the painting, the photo and the optimiser's settings, not on the model.
Comparing several models on one loss therefore needs it once: a later evaluation takes it from the
earlier report, after checking that every one of those inputs is the same (the files by their
SHA-256), and refuses in one line, before any work, where one differs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from stylenet.errors import ConfigError

# What the optimisation's result depends on besides the loss, the painting and the photo.
_SETTINGS = ("gatys_steps", "method", "lr", "size", "seed")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_reference(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The report at `path` (a report.json, or the folder holding one) and where it was read from."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--reference {path}: no report.json there") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"--reference {path}: not a readable report ({error})") from None
    if not isinstance(report, dict) or not isinstance(report.get("settings"), dict):
        raise ConfigError(f"--reference {file}: not a report of stylenet evaluate")
    if not report["settings"].get("gatys_steps"):
        raise ConfigError(f"--reference {file}: it ran no optimisation (--gatys-steps 0), so it has none to reuse")
    return file, report


def check_settings(file: Path, reference: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuses a reference whose optimisation ran with other steps, optimiser, rate, size or seed."""
    for key in _SETTINGS:
        theirs, ours = reference["settings"].get(key), settings[key]
        if theirs != ours:
            raise ConfigError(f"--reference {file}: its optimisation ran with {key} {theirs}, this one's is {ours}")


def _scores_photos(key: str) -> bool:
    """Whether a loss setting changes the score of a photo: the temporal term's settings (its flows, noise,
    motion) shape only the moved copies of training photos, which scoring photos never makes."""
    return not key.startswith("temporal_")


def _scored(reference: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    """(style, loss, per-photo rows) for each style the reference scored."""
    if "styles" in reference:
        return [(entry["style"], entry["loss"], entry["images"]) for entry in reference["styles"]]
    settings = reference["settings"]
    return [(settings["style"], settings["loss"], reference["images"])]


def optimisation_rows(
    file: Path,
    reference: dict[str, Any],
    style: dict[str, Any],
    loss: dict[str, Any],
    photo_hashes: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """The reference's optimisation result for each photo of `photo_hashes` (name: SHA-256), in `style` on
    `loss`; `ConfigError` naming the first thing that differs."""
    try:
        matches = [entry for entry in _scored(reference) if entry[0].get("name") == style["name"]]
    except (KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"--reference {file}: not a report of stylenet evaluate (its styles cannot be read)"
        ) from None
    if not matches:
        raise ConfigError(f"--reference {file}: it did not score the style {style['name']!r}")
    their_style, their_loss, rows = matches[0]
    if their_style.get("sha256") != style["sha256"] or their_style.get("size") != style["size"]:
        theirs = f"{their_style.get('image')} at {their_style.get('size')} px"
        raise ConfigError(
            f"--reference {file}: its {style['name']} painting is another file or size "
            f"({theirs}, this one {style['image']} at {style['size']} px)"
        )
    loss = json.loads(json.dumps(loss))  # as the reference holds it: tuples as lists
    differing = sorted(k for k in {*their_loss, *loss} if _scores_photos(k) and their_loss.get(k) != loss.get(k))
    if differing:
        raise ConfigError(f"--reference {file}: its {style['name']} loss differs in {', '.join(differing)}")
    by_photo = {row["photo"]: row for row in rows}
    reused = {}
    for name, sha256 in photo_hashes.items():
        row = by_photo.get(name)
        if row is None or "optimisation" not in row:
            raise ConfigError(f"--reference {file}: it has no optimisation of the photo {name}")
        if row.get("photo_sha256") != sha256:
            raise ConfigError(f"--reference {file}: its photo {name} is another file")
        reused[name] = row["optimisation"]
    return reused
