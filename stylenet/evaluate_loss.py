"""The loss `stylenet evaluate` scores a model on: the one it trained with (or the defaults), against the
painting of each style scored, at that style's size and with its weights."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from stylenet.checkpoint import styles_of
from stylenet.config_files import default_loss, style_config
from stylenet.errors import ConfigError
from stylenet.evaluate_reference import file_sha256
from stylenet.evaluate_report import WEIGHT_KEYS
from stylenet.losses.perceptual import PerceptualLoss, build_perceptual_loss
from stylenet.losses.vgg import NAMED_WEIGHTS, check_weights
from stylenet.styles import find_style_image, load_style_image

DEFAULT_STYLE_SIZE = 512
# Each style of a multi-style model is scored on the painting it trained on, so no other will do.
SEVERAL_STYLES_REMEDY = "where a model of several styles looks for the paintings it trained on"


def _resolve_style(
    style: str | None, metadata: dict[str, Any], loss_config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The style (name, image, size, source) to evaluate against, and the loss config it implies."""
    stored = metadata.get("style") or {}
    if style is None:
        if not stored.get("image"):
            raise ConfigError("the model's metadata names no style image; pass --style NAME or --style IMAGE")
        size = stored.get("size") or DEFAULT_STYLE_SIZE
        return {"name": stored.get("name"), "image": stored["image"], "size": size, "source": "model"}, loss_config
    config_path = style_config(style)
    if config_path is not None:
        from omegaconf import OmegaConf
        from omegaconf.errors import MissingMandatoryValue

        config = OmegaConf.load(config_path)
        try:
            image = config.image
        except MissingMandatoryValue as error:
            raise ConfigError(f"--style {style}: {config_path} has no image; pass --style /path/to/image") from error
        # A style config carries its own weights (configs/loss/perceptual.yaml reads them from it).
        weights = {k: float(config[k]) for k in ("content_weight", "style_weight", "tv_weight") if k in config}
        size = config.get("size") or DEFAULT_STYLE_SIZE
        resolved = {"name": config.get("name", style), "image": image, "size": size, "source": str(config_path)}
        return resolved, {**loss_config, **weights}
    if Path(style).expanduser().is_file():
        size = stored.get("size") or DEFAULT_STYLE_SIZE
        return {"name": Path(style).stem, "image": style, "size": size, "source": "path"}, loss_config
    raise ConfigError(f"--style {style}: neither a style name in configs/style/ nor an image file")


def loss_definition(metadata: dict[str, Any], vgg_weights: str | None) -> tuple[dict[str, Any], bool]:
    """The model's training loss definition (or the defaults) and whether the defaults were used."""
    stored = metadata.get("loss")
    known = set(inspect.signature(build_perceptual_loss).parameters) - {"style_image"}
    # Models whose metadata predates the stored loss definition get the configured defaults.
    # `_target_` (Hydra's) and any future keys are dropped: only build_perceptual_loss's arguments count.
    loss_config = {k: v for k, v in (stored or default_loss()).items() if k in known}
    # Scoring photos never uses the temporal term, whose weight may be one per style by name.
    loss_config.pop("temporal_weight", None)
    if vgg_weights is not None:
        loss_config["vgg_weights"] = vgg_weights
    else:
        _check_recorded_weights(str(loss_config.get("vgg_weights", "caffe")))
    return loss_config, not stored


def _check_recorded_weights(weights: str) -> None:
    """One line for VGG weights the model's loss names that cannot be used here, in evaluate's terms: a
    model trained on a weights file of another machine is scored with `--vgg-weights`, not loss.vgg_weights."""
    if weights not in NAMED_WEIGHTS and not Path(weights).expanduser().is_file():
        raise ConfigError(
            f"the model was trained with the VGG19 weights file {weights}, which is not here: "
            "give it with --vgg-weights PATH, or score with --vgg-weights caffe"
        )
    check_weights(weights, setting="the model's VGG19 weights ")


def build_loss(
    metadata: dict[str, Any], style: str | None, vgg_weights: str | None
) -> tuple[PerceptualLoss, dict[str, Any], dict[str, Any], bool]:
    """The model's training loss (or the defaults), its definition, the style and whether defaults were used."""
    loss_config, defaults_used = loss_definition(metadata, vgg_weights)
    style_info, loss_config = _resolve_style(style, metadata, loss_config)
    found = find_style_image(
        str(style_info["image"]),
        remedy="or score against a painting with --style PATH",
        path_remedy="score against another painting with --style PATH",
    )
    style_info["sha256"] = file_sha256(found)
    style_image = load_style_image(str(style_info["image"]), int(style_info["size"]))
    return build_perceptual_loss(style_image, **loss_config), loss_config, style_info, defaults_used


def styles_to_score(metadata: dict[str, Any], style: str | None) -> list[dict[str, Any]] | None:
    """For a model of several styles, the entries to score (all, or the one `style` names); None for one style.

    Checked before any work: an unknown name, or a painting that cannot be found, is one line."""
    styles = styles_of(metadata)
    if len(styles) < 2:
        return None
    names = [entry["name"] for entry in styles]
    if style is not None and style not in names:
        raise ConfigError(
            f"--style {style}: this model holds {', '.join(names)}; name one of them (each is scored on its own loss)"
        )
    chosen = styles if style is None else [styles[names.index(style)]]
    for entry in chosen:
        if not entry.get("image"):
            raise ConfigError(f"the model's style {entry['name']!r} names no painting, so it has no loss to score")
        find_style_image(str(entry["image"]), remedy=SEVERAL_STYLES_REMEDY)
    return chosen


def style_definition(entry: dict[str, Any], loss_config: dict[str, Any]) -> tuple[dict, dict]:
    """One style's loss as it was trained (its own content/style/tv weights) and its painting (file, size)."""
    weights = {k: float(entry[k]) for k in WEIGHT_KEYS if entry.get(k) is not None}
    size = entry.get("size") or DEFAULT_STYLE_SIZE
    image = str(entry["image"])
    info = {"name": entry["name"], "image": image, "size": size, "source": "model"}
    return {**loss_config, **weights}, info | {"sha256": file_sha256(find_style_image(image, SEVERAL_STYLES_REMEDY))}


def defined_loss(config: dict[str, Any], info: dict[str, Any]) -> PerceptualLoss:
    """The loss `style_definition` describes, built: its painting loaded at its size."""
    return build_perceptual_loss(load_style_image(info["image"], int(info["size"])), **config)


def style_loss(entry: dict[str, Any], loss_config: dict[str, Any]) -> tuple[PerceptualLoss, dict, dict]:
    """One style's loss as it was trained: its painting at its size, its own content/style/tv weights."""
    config, info = style_definition(entry, loss_config)
    return defined_loss(config, info), config, info
