"""What a checkpoint given as `ckpt_path` must agree with for a run to resume it: its styles and paintings,
its time budget and learning-rate schedule; and what a fine-tuning run's checkpoint carries on (the steps
and network settings of the model it fine-tuned)."""

from __future__ import annotations

import filecmp
from datetime import timedelta
from typing import Any

from omegaconf import DictConfig

from stylenet.checkpoint import styles_of
from stylenet.config_files import style_config
from stylenet.errors import ConfigError
from stylenet.style_list import selected_styles
from stylenet.styles import find_style_image
from stylenet.validation import duration


def _recorded_styles(checkpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The styles a checkpoint's run trained, as its module recorded them (none for a malformed record)."""
    info = checkpoint.get("stylenet")
    styles = styles_of(info) if isinstance(info, dict) else []
    return styles if all(isinstance(style, dict) and isinstance(style.get("name"), str) for style in styles) else []


def _same_painting(recorded: Any, current: str) -> bool:
    """Whether the painting a checkpoint recorded is the one configured now, compared by content: the same file
    may be reached by another path. One that cannot be found here (another machine's) is taken to be it."""
    if not isinstance(recorded, str):
        return True
    try:
        before = find_style_image(recorded)
    except ConfigError:
        return True
    now = find_style_image(current)
    return before.resolve() == now.resolve() or filecmp.cmp(before, now, shallow=False)


def check_resumed_styles(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """A checkpoint of other styles would train on under this run's names: the model written would carry
    them with another style's steps and optimizer state."""
    recorded = _recorded_styles(checkpoint)
    if not recorded:
        return
    held = [style["name"] for style in recorded]
    styles = selected_styles(cfg)
    wanted = [style["name"] for style in styles]
    if held != wanted:
        if len(recorded) > 1:
            option = f"styles=[{','.join(held)}]"
        elif style_config(held[0]):
            option = f"style={held[0]}"
        else:
            option = f"style=custom style.image={recorded[0].get('image')} style.name={held[0]}"
        adds = len(wanted) == 1 and wanted[0] not in held  # init= adds one new style to a trained network
        new_run = (
            f"; to train {wanted[0]!r} from its weights, start a new run, without ckpt_path, with init={cfg.ckpt_path}"
        )
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} is a run of {_named(held)}, this run trains {_named(wanted)}: "
            f"to resume it, set {option}{new_run if adds else ''}"
        )
    for before, now in zip(recorded, styles, strict=True):
        if not _same_painting(before.get("image"), str(now["image"])):
            again = f"set style.image={before['image']}" if len(styles) == 1 else "give it that painting again"
            raise ConfigError(
                f"ckpt_path={cfg.ckpt_path} trained {now['name']!r} on the painting {before['image']}, this run "
                f"on {now['image']}: to resume it, {again}; to train on from its weights with the new painting, "
                f"start a new run, without ckpt_path, with finetune={cfg.ckpt_path}"
            )


def _named(names: list[str]) -> str:
    return f"the style {names[0]!r}" if len(names) == 1 else f"the styles {names}"


def resumed_finetune(checkpoint: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """Of a fine-tuning run's checkpoint, the steps its model had trained before that run and the network
    settings it took from that model (model.* were ignored, so a resume ignores them too); (0, None) for
    any other run's."""
    info = checkpoint.get("stylenet")
    before = info.get("steps_before", 0) if isinstance(info, dict) else 0
    if not (isinstance(before, int) and before > 0):
        return 0, None
    config = info.get("model")
    return before, config if isinstance(config, dict) else None


def _trained_seconds(checkpoint: dict[str, Any]) -> float:
    """The training time a checkpoint's run had spent, as its time budget (Lightning's Timer) counted it."""
    for state in checkpoint.get("callbacks", {}).values():
        if isinstance(state, dict) and isinstance(state.get("time_elapsed"), dict):
            return float(state["time_elapsed"].get("train", 0.0))
    return 0.0  # a run without a budget kept no count: a budgeted resume starts its own


def check_resumed_time(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """Lightning counts the checkpoint's training time against trainer.max_time: a run that had spent its
    budget would stop before its first step and still replace the kept model."""
    budget = duration(cfg.trainer.get("max_time"), "trainer.max_time")
    spent = _trained_seconds(checkpoint)
    if budget is not None and spent >= budget.total_seconds():
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} has already trained for {timedelta(seconds=round(spent))}, all of this "
            f"run's time budget ({budget}, trainer.max_time): to train longer, raise trainer.max_time or set it to null"
        )


def check_resumed_lr_schedule(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """A checkpoint keeps the schedule's state and the rate it had reached: resumed under the other
    schedule, a cosine run would go on at its last, small rate, or a constant one start a cosine anew."""
    saved = checkpoint.get("hyper_parameters", {}).get("lr_schedule", "constant")  # older checkpoints: constant
    wanted = cfg.get("lr_schedule", "constant")
    if saved != wanted:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} trained with lr_schedule={saved}; resume with lr_schedule={saved}"
        )
