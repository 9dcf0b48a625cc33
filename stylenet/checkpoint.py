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

from stylenet import git_lfs
from stylenet.atomic_write import replacing, write_through_memory
from stylenet.errors import ConfigError, StylenetError
from stylenet.networks.transformer import TransformerNet
from stylenet.torch_files import expansion_problem, is_bare_pickle, why_unreadable
from stylenet.validation import NETWORK_KEYS, check_network_config

log = logging.getLogger(__name__)

FORMAT = "stylenet.inference/1"


class CheckpointError(StylenetError):
    """A file that is not a readable stylenet model."""


def move_aside(path: Path) -> None:
    """Renames an existing file at `path` to `<stem>.<its mtime><suffix>`, so that nothing writes over it."""
    if not path.exists():
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    # A compiled package keeps its whole suffix: loaders run one only under a name ending in .aoti.pt2.
    suffix = ".aoti.pt2" if path.name.lower().endswith(".aoti.pt2") else path.suffix
    stem = path.name[: -len(suffix)] if suffix else path.name
    backup = path.with_name(f"{stem}.{stamp}{suffix}")
    counter = 1
    while backup.exists():
        backup = path.with_name(f"{stem}.{stamp}-{counter}{suffix}")
        counter += 1
    path.rename(backup)
    log.warning("kept the previous %s as %s", path, backup)


def save_inference_checkpoint(path: str | Path, network: TransformerNet, metadata: dict[str, Any]) -> Path:
    """Write `network` and `metadata` (style, steps, val losses...) to `path`.

    An existing file at `path` is moved aside to `<stem>.<its mtime>.pt`, never overwritten. The network
    describes itself: metadata read from another file (whose "model" may name another style count) cannot
    override its settings or weights.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    payload = {**metadata, "format": FORMAT, "model": network.config.to_dict(), "state_dict": state}
    with replacing(path) as partial:
        _save(payload, partial)
        move_aside(path)  # only once the new model is whole: a failed write leaves the old one where it was
    return path


def write_atomically(payload: dict[str, Any], path: Path) -> None:
    """`torch.save` to a temporary name, then rename: a crash mid-write never leaves a truncated model at `path`."""
    with replacing(path) as partial:
        _save(payload, partial)


def _save(payload: dict[str, Any], path: Path) -> None:
    write_through_memory(path, lambda buffer: torch.save(payload, buffer))


def check_not_git_lfs_pointer(path: Path) -> None:
    """One `CheckpointError` line where `path` holds a Git LFS pointer instead of a model."""
    if git_lfs.is_pointer(path):
        raise CheckpointError(f"{path} is a Git LFS pointer, not the model: {git_lfs.FETCH} it came from")


def _read(path: Path, kind: str) -> Any:
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a model file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    check_not_git_lfs_pointer(path)
    expands = expansion_problem(path)
    if expands:
        raise CheckpointError(f"{path}: refused, {expands}")
    if is_bare_pickle(path):
        raise CheckpointError(f"{path}: not a readable {kind} (a bare pickle, not a file torch wrote)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle refused, not a torch file at all
        raise CheckpointError(f"{path}: not a readable {kind} ({why_unreadable(path, error)})") from error


def _first(names: list[str]) -> str:
    return f"{len(names)} (e.g. {names[0]})" if names else "0"


def weights_problem(network: TransformerNet, state_dict: dict[Any, Any]) -> str | None:
    """How `state_dict` fails to fit `network` (missing, unexpected, reshaped weights); None if it fits."""
    expected = {name: tensor.shape for name, tensor in network.state_dict().items()}
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        return "its weights are not a table of named tensors"
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    reshaped = sorted(k for k in expected.keys() & state_dict.keys() if state_dict[k].shape != expected[k])
    if not (missing or unexpected or reshaped):
        return None
    return f"{_first(missing)} missing, {_first(unexpected)} unexpected, {_first(reshaped)} of another shape"


def style_metadata(styles: list[dict[str, Any]]) -> dict[str, Any]:
    """How a model file describes its styles: "style" for one (as always), "styles" for several, in row order."""
    return {"style": dict(styles[0])} if len(styles) == 1 else {"styles": [dict(s) for s in styles]}


def styles_of(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The styles a model's metadata describes, in row order (one entry for a single-style model)."""
    if metadata.get("styles"):
        return list(metadata["styles"])
    return [metadata["style"]] if metadata.get("style") else []


def build_network(path: Path, config: Any, state_dict: Any) -> TransformerNet:
    """The network a model file declares, with its weights; one `CheckpointError` line for any mismatch."""
    if isinstance(config, dict):  # files written before these keys existed: the networks they had
        config = {"num_styles": 1, "downsample": "strided", **config}
    if not isinstance(config, dict) or set(config) != set(NETWORK_KEYS):
        raise CheckpointError(
            f"{path}: malformed model file: its network description must have exactly {', '.join(NETWORK_KEYS)}"
        )
    try:
        check_network_config(config)
    except ConfigError as error:
        raise CheckpointError(f"{path}: malformed network description: {error}") from None
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: malformed model file: it holds no weights")
    with torch.device("meta"):  # shapes only: a bogus width must not allocate a huge network
        problem = weights_problem(TransformerNet(**config), state_dict)
    if problem:
        raise CheckpointError(f"{path}: its weights do not match the network it declares ({config}): {problem}")
    network = TransformerNet(**config)
    # Shipped models store float16 weights (half the file); the network always runs from float32 ones.
    network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()})
    return network.eval()


def _check_metadata(path: Path, metadata: dict[str, Any], num_styles: int = 1) -> None:
    style = metadata.get("style")
    if style is not None and not (isinstance(style, dict) and isinstance(style.get("name"), str)):
        raise CheckpointError(f"{path}: malformed model file: its style must be a table with a name")
    styles = metadata.get("styles")
    if styles is not None or num_styles > 1:
        names = [s.get("name") if isinstance(s, dict) else None for s in styles or []]
        if len(names) != num_styles or not all(isinstance(n, str) and n for n in names) or len(set(names)) < len(names):
            raise CheckpointError(
                f"{path}: malformed model file: its network holds {num_styles} styles, so it must list as many "
                "distinct style names"
            )
    steps = metadata.get("steps")
    if steps is not None and not (isinstance(steps, int) and steps >= 0):
        raise CheckpointError(f"{path}: malformed model file: its steps must be a whole number, not {steps!r}")


def load_inference_checkpoint(path: str | Path) -> tuple[TransformerNet, dict[str, Any]]:
    """The network (in eval mode) and the metadata stored at `path`."""
    path = Path(path)
    payload = _read(path, "stylenet model")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a stylenet inference checkpoint (expected format {FORMAT})")
    network = build_network(path, payload.get("model"), payload.get("state_dict"))
    metadata = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    _check_metadata(path, metadata, network.num_styles)
    return network, metadata


def read_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict a stylenet training run saved at `path` (.ckpt), checked to be one."""
    path = Path(path)
    checkpoint = _read(path, "checkpoint")
    if isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT:
        raise CheckpointError(
            f"{path}: a trained model, not a training checkpoint: resume a run from its checkpoints/last.ckpt, "
            "or train on from this model's weights with finetune= (or init= to add styles to it)"
        )
    if not isinstance(checkpoint, dict) or "stylenet" not in checkpoint:
        raise CheckpointError(f"{path}: a Lightning checkpoint, but not one written by stylenet training")
    step = checkpoint.get("global_step")
    if not (isinstance(step, int) and step >= 0):
        raise CheckpointError(f"{path}: malformed checkpoint: its global_step must be a whole number, not {step!r}")
    return checkpoint


# Lightning stores the module's weights under its attribute names; the network is `module.network`.
NETWORK_PREFIX = "network."


def load_lightning_checkpoint(path: str | Path) -> tuple[TransformerNet, dict[str, Any]]:
    """The network (in eval mode) and metadata of a stylenet Lightning `.ckpt`, for inference and export."""
    path = Path(path)
    checkpoint = read_lightning_checkpoint(path)
    info, state = checkpoint["stylenet"], checkpoint.get("state_dict")
    if not isinstance(info, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: malformed checkpoint: no network description or weights")
    prefix = NETWORK_PREFIX
    weights = {k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
    network = build_network(path, info.get("model"), weights)
    before = info.get("steps_before", 0)  # a fine-tuning run's: the steps of the model it started from
    if not (isinstance(before, int) and before >= 0):
        raise CheckpointError(f"{path}: malformed checkpoint: its steps_before must be a whole number, not {before!r}")
    metadata = {"model": network.config.to_dict(), "steps": before + checkpoint["global_step"]}
    metadata |= {key: info[key] for key in ("style", "styles", "loss") if info.get(key) is not None}
    _check_metadata(path, metadata, network.num_styles)
    return network, metadata
