"""Which styles a run trains, each with its own painting, size and loss weights.

One style: `style=starry` as always. Several, in one network (conditional instance norm):
`style=[starry,wave]` on the command line (train.py turns Hydra's multiple selection into
`styles`), or `styles: [starry, wave]` in an experiment file. Hydra merges the files of a
multiple selection into one `style` node, so each style is read again from its own file here;
a `style.*` value set by an override or an experiment (one that differs from the style file it
came from) applies to every style, as do loss weights set directly as `loss.*_weight`.
`loss.temporal_weight` is one number for every style, or one per style by name.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from stylenet.config_files import style_config
from stylenet.errors import ConfigError

WEIGHT_KEYS = ("content_weight", "style_weight", "tv_weight")
STYLE_KEYS = ("name", "image", "size", *WEIGHT_KEYS)
# Keys that name one painting: set for all styles at once they would make every style the same.
_ONE_PAINTING_KEYS = ("name", "image")


def check_style_name(name: Any) -> None:
    """A style's name becomes file names (`checkpoints/NAME.pt`) and a word of blends (`starry=0.7,wave=0.3`):
    a path (`../x`, `sub/x`), an empty or hidden name, or one with blend punctuation would write elsewhere than
    the user looks, over another file, or be unusable by name."""
    text = str(name)
    if not re.fullmatch(r"\w[\w.-]*", text) or ".." in text:
        raise ConfigError(
            f"style.name={text!r}: a style's name is a file name and a word of blends: letters, digits, _, - and "
            "inner dots only (no folders)"
        )


def check_style_node(node: DictConfig, where: str) -> None:
    """A style's settings as `STYLE_KEYS` lists them, no more and no fewer, found before anything loads: a
    misspelt key would otherwise be ignored, or stop the run at the first setting that reads the right one.
    `where`: how messages name the style ("style", or its file)."""

    def named(key: str) -> str:
        return f"style.{key}" if where == "style" else f"{where}: {key}"

    for key in sorted(set(node.keys()) - set(STYLE_KEYS), key=str):
        close = difflib.get_close_matches(str(key), STYLE_KEYS, n=1, cutoff=0.6)
        hint = f"did you mean {named(close[0])}?" if close else f"a style sets {', '.join(STYLE_KEYS)}"
        raise ConfigError(f"{named(key)}: not a style setting; {hint}")
    missing = [key for key in STYLE_KEYS if key not in node.keys()]  # `in` says no for a `???` value too
    if missing:
        raise ConfigError(f"{where}: no {missing[0]}; a style sets {', '.join(STYLE_KEYS)}")
    if OmegaConf.is_missing(node, "name"):
        raise ConfigError(f"{named('name')} is not set (???): give the style a name, e.g. style.name=mine")
    check_style_name(node.name)


def _style_file(name: str) -> DictConfig:
    path = style_config(name)
    if path is None:
        raise ConfigError(f"styles: no style named {name!r} (a style is a file configs/style/NAME.yaml)")
    return OmegaConf.load(path)


def _overrides(cfg: DictConfig) -> dict[str, Any]:
    """`style.*` values that differ from the selected style's own file: set on the command line or by an experiment."""
    own = _style_file(cfg.style.name) if style_config(cfg.style.name) else OmegaConf.create({})
    chosen = OmegaConf.to_container(cfg.style, resolve=False)
    return {k: v for k, v in chosen.items() if k not in own or own[k] != v}


def selected_styles(cfg: DictConfig) -> list[dict[str, Any]]:
    """The run's styles as dicts of name, image, size and the three loss weights, in training order."""
    names = cfg.get("styles")
    if not names:
        return [_one_style(cfg.style, cfg)]
    names = list(names)
    if len(set(names)) != len(names):
        raise ConfigError(f"styles={names}: a style is listed twice")
    if cfg.get("init"):
        raise ConfigError("init= adds one style to a trained model: select one style (style=NAME), not a list")
    overrides = _overrides(cfg)
    shared = sorted(set(overrides) & set(_ONE_PAINTING_KEYS))
    if shared and len(names) > 1:
        raise ConfigError(
            f"style.{shared[0]} names one painting; in a run of several styles each comes from its own "
            "configs/style/NAME.yaml (add a file for a new painting)"
        )
    styles = []
    for name in names:
        styles.append(_one_style(OmegaConf.merge(_style_file(name), overrides), cfg, str(style_config(name))))
    return styles


def _one_style(node: DictConfig, cfg: DictConfig, where: str = "style") -> dict[str, Any]:
    check_style_node(node, where)
    try:
        style = {key: node[key] for key in ("name", "image", "size")}
    except MissingMandatoryValue:
        raise ConfigError(
            f"style {node.get('name', '?')!r} needs an image: style.image=/path/to/painting.jpg"
        ) from None
    for key in WEIGHT_KEYS:
        # A loss weight set directly (not the interpolation of the style's) applies to every style.
        direct = key in cfg.loss and not OmegaConf.is_interpolation(cfg.loss, key)
        style[key] = cfg.loss[key] if direct else node[key]
    return style


def temporal_weights(cfg: DictConfig) -> float | list[float]:
    """`loss.temporal_weight` for the run's styles: one number for all, or, given as a mapping of style name to
    weight (`{starry: 50, udnie: 150}`), one per style in training order, every style named exactly once."""
    value = cfg.loss.get("temporal_weight", 0.0)
    if not isinstance(value, (DictConfig, dict)):
        return value
    names = [style["name"] for style in selected_styles(cfg)]
    given = dict(value)
    unknown = sorted(set(given) - set(names))
    missing = [name for name in names if name not in given]
    if unknown or missing:
        problem = f"names {unknown[0]!r}, not a style of this run" if unknown else f"has no weight for {missing[0]!r}"
        raise ConfigError(f"loss.temporal_weight {problem}: give one weight for each of {', '.join(names)}")
    return [given[name] for name in names]
