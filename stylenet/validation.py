"""Settings checked before any work starts: each mistake is one `ConfigError` line naming the setting.

Hydra hands over whatever a user typed (`trainer.max_steps=abc` arrives as the string "abc"), and
the libraries that would eventually refuse it do so deep inside, as a traceback. Model files are
checked with the same rules, so a malformed one is refused in one line too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch

from stylenet.errors import ConfigError
from stylenet.hardware import resolve_speed
from stylenet.style_list import check_style_node

LR_SCHEDULES = ("constant", "cosine")

NETWORK_CHOICES = {
    "upsample": ("nearest", "bilinear", "transposed"),
    "norm": ("instance", "batch", "none"),
    "downsample": ("strided", "blur"),
}
NETWORK_KEYS = ("width", "num_residual_blocks", "upsample", "norm", "num_styles", "downsample")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole_number(value: Any, name: str, minimum: int = 1) -> int:
    if not (_is_number(value) and float(value).is_integer() and value >= minimum):
        raise ConfigError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return int(value)


def positive_number(value: Any, name: str, allow_zero: bool = False) -> float:
    # NaN fails both comparisons.
    if not (_is_number(value) and (value >= 0 if allow_zero else value > 0) and value != float("inf")):
        raise ConfigError(f"{name} must be a number {'>=' if allow_zero else '>'} 0, not {value!r}")
    return float(value)


def steps_or_fraction(value: Any, name: str, minimum: int = 1) -> float:
    """Lightning's `int | float` arguments: a whole count, or a fraction (0, 1] of an epoch."""
    if isinstance(value, float) and 0 < value <= 1:
        return value
    if not (_is_number(value) and float(value).is_integer() and value >= minimum):
        raise ConfigError(f"{name} must be a whole number >= {minimum} or a fraction in (0, 1], not {value!r}")
    return value


_DURATION_UNITS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")


def duration(value: Any, name: str) -> timedelta | None:
    """Lightning's `max_time`: "DD:HH:MM:SS" or a mapping such as {minutes: 7}; None for no limit.

    A bare number is refused rather than read in some unit: YAML reads an unquoted 1:00:00:00 as
    the base-60 number 216000, which would otherwise pass for a budget of days or seconds."""
    if value is None:
        return None
    hint = (
        f"{name} must be a duration, DD:HH:MM:SS (e.g. 00:00:07:00, quoted in a YAML file) or {{minutes: 7}}, "
        f"not {value!r}"
    )
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", value.strip())
        if not match:
            raise ConfigError(hint)
        parts = dict(zip(("days", "hours", "minutes", "seconds"), map(int, match.groups()), strict=True))
    elif isinstance(value, Mapping) and value and set(value) <= set(_DURATION_UNITS):
        parts = {unit: positive_number(amount, f"{name}.{unit}", allow_zero=True) for unit, amount in value.items()}
    else:
        raise ConfigError(hint)
    try:
        budget = timedelta(**parts)
    except OverflowError:
        raise ConfigError(f"{name}={value!r} is too long a duration") from None
    if budget <= timedelta(0):
        raise ConfigError(f"{name} must be longer than 0, not {value!r}")
    return budget


def one_of(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}")
    return value


def check_network_config(values: Mapping[str, Any], prefix: str = "model.") -> None:
    """The arguments of `TransformerNet` (as in `configs/model/` or a model file) make a network."""
    if "width" in values:
        positive_number(values["width"], f"{prefix}width")
    if "num_residual_blocks" in values:
        whole_number(values["num_residual_blocks"], f"{prefix}num_residual_blocks", minimum=0)
    if "num_styles" in values:
        whole_number(values["num_styles"], f"{prefix}num_styles")
        if values["num_styles"] > 1 and values.get("norm", "instance") != "instance":
            raise ConfigError(f"{prefix}norm must be instance in a network of several styles, not {values['norm']!r}")
    for key, choices in NETWORK_CHOICES.items():
        if key in values:
            one_of(values[key], f"{prefix}{key}", choices)


# Lightning Trainer arguments that count (name: smallest value); null leaves them to Lightning's default.
_TRAINER_COUNTS = {
    "max_steps": 1,  # training stops by steps: there is no sensible run without it
    "min_steps": 0,
    "max_epochs": 1,
    "min_epochs": 0,
    "log_every_n_steps": 1,
    "num_nodes": 1,
    "accumulate_grad_batches": 1,
    "check_val_every_n_epoch": 1,
    "num_sanity_val_steps": 0,
}
_MINUS_ONE_MEANS_ALL = ("max_epochs", "num_sanity_val_steps")
_TRAINER_FRACTIONS = {"val_check_interval": 1, "limit_train_batches": 0, "limit_val_batches": 0}


def _check_no_misspelt_setting(cfg: Any) -> None:
    """Refuses a top-level key added with `+key=value` that looks like a misspelt setting.

    Hydra's own message for `checkpoint_kep=3` suggests `+checkpoint_kep=3`, which adds a key that
    nothing reads: the run would go on without the setting meant. Keys far from every setting stay
    allowed, as values that other settings interpolate (`data.image_size: ${my_size}`)."""
    # `+max_steps=5` for trainer.max_steps: a group's setting given without its group.
    nested = [f"{group}.{name}" for group in _GROUPS if isinstance(cfg.get(group), Mapping) for name in cfg[group]]
    for key in sorted(set(cfg) - set(TRAIN_SETTINGS) - _interpolated(cfg), key=str):
        close = difflib.get_close_matches(str(key), TRAIN_SETTINGS, n=1, cutoff=0.8)
        close = close or [name for name in nested if name.split(".", 1)[1] == key][:1]
        if close:
            raise ConfigError(f"{key}: not a setting; did you mean {close[0]}?")


def _interpolated(cfg: Any) -> set[str]:
    """The top-level names that some setting reads as `${name}`: values added on purpose, not slips."""
    from omegaconf import DictConfig, OmegaConf

    tree = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            names.update(match.split(".")[0] for match in re.findall(r"\$\{([^}:]+)\}", node))

    walk(tree)
    return names


def _check_trainer(trainer: Mapping[str, Any]) -> None:
    for key, minimum in _TRAINER_COUNTS.items():
        value = trainer.get(key)
        if (value is not None or key == "max_steps") and not (key in _MINUS_ONE_MEANS_ALL and value == -1):
            whole_number(value, f"trainer.{key}", minimum)
    for key, minimum in _TRAINER_FRACTIONS.items():
        if trainer.get(key) is not None:
            steps_or_fraction(trainer[key], f"trainer.{key}", minimum)
    duration(trainer.get("max_time"), "trainer.max_time")
    if trainer.get("gradient_clip_val") is not None:
        positive_number(trainer["gradient_clip_val"], "trainer.gradient_clip_val", allow_zero=True)
    _check_trainer_names(trainer)
    from stylenet.training.devices import check_devices  # here: inference loads this module, never training code

    check_devices(trainer)


_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def _check_trainer_names(trainer: Mapping[str, Any]) -> None:
    """Keys, precision and accelerator that Lightning would refuse only after the photos have been read."""
    import inspect
    import typing

    import pytorch_lightning as pl  # here: model files load through this module, training does not
    from lightning_fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS

    known = set(inspect.signature(pl.Trainer.__init__).parameters) | {"_target_"}
    unknown = sorted(set(trainer) - known)
    if unknown:
        raise ConfigError(f"trainer.{unknown[0]}: not a setting of Lightning's Trainer")
    precision = trainer.get("precision", "auto")
    precisions = ["auto", *typing.get_args(_PRECISION_INPUT_STR), *typing.get_args(_PRECISION_INPUT_STR_ALIAS)]
    if precision is not None and str(precision) not in precisions and precision not in (16, 32, 64):
        raise ConfigError(f"trainer.precision={precision}: use one of {', '.join(map(str, precisions))}")
    accelerator = trainer.get("accelerator", "auto")
    if isinstance(accelerator, str):
        if accelerator not in _ACCELERATORS:
            raise ConfigError(f"trainer.accelerator={accelerator}: use one of {', '.join(_ACCELERATORS)}")
        apple_gpu = accelerator == "gpu" and torch.backends.mps.is_available()  # Lightning's "gpu" there
        if accelerator in ("gpu", "cuda") and not torch.cuda.is_available() and not apple_gpu:
            raise ConfigError(f"trainer.accelerator={accelerator}: torch sees no CUDA GPU here; use cpu or auto")


def crop_scale_bounds(value: Any) -> tuple[float, float] | None:
    """`data.crop_scale` as (smallest, largest) share of a photo's area, checked before any work."""
    if value is None:
        return None
    shares = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    if len(shares) == 2 and all(_is_number(share) for share in shares) and 0 < shares[0] <= shares[1] <= 1:
        return float(shares[0]), float(shares[1])
    raise ConfigError(
        f"data.crop_scale={value}: give the smallest and largest share of a photo's area a crop may take, "
        "0 < smallest <= largest <= 1, e.g. [0.25,1.0]; or null for crops at one scale"
    )


# Settings only one photo source reads: given for another (`+data.root=...` with data=demo), they would be
# ignored without a word, and the run would train on other photos than the user's.
_SOURCE_SETTINGS = {"root": "folder", "val_root": "folder", "name": "hub"}


def _check_data(data: Mapping[str, Any]) -> None:
    source = data.get("source")
    for key, owner in _SOURCE_SETTINGS.items():
        if data.get(key) is not None and source != owner:
            raise ConfigError(
                f"data.{key} is read with data={owner}, and this run uses data={source}: add data={owner}"
            )
    size = whole_number(data.get("image_size"), "data.image_size", minimum=16)  # four halvings and back
    whole_number(data.get("batch_size"), "data.batch_size")
    if "num_workers" in data:
        whole_number(data["num_workers"], "data.num_workers", minimum=0)
    for key, minimum in (("val_size", 1), ("min_size", 1), ("min_epoch_photos", 0), ("cache_photos", 0)):
        if data.get(key) is not None:
            whole_number(data[key], f"data.{key}", minimum)
    resize = data.get("resize")
    if resize is not None and whole_number(resize, "data.resize") < size:
        raise ConfigError(
            f"data.resize={resize} is smaller than data.image_size={size}: crops of image_size cannot be cut "
            f"from photos resized to {resize}; use data.resize >= {size} or null"
        )
    crop_scale_bounds(data.get("crop_scale"))


_GROUPS = ("trainer", "optimizer", "data", "model", "loss", "style", "paths")

# The top-level settings of configs/train.yaml and its groups (tests/test_configs.py keeps the two in step).
TRAIN_SETTINGS = (
    *("seed", "styles", "style_row_lr_scale", "init", "init_trains", "init_shared_lr_scale", "init_keep_weight"),
    *("finetune", "ckpt_path", "checkpoint_every_n_steps", "checkpoint_keep", "weight_average_decay"),
    *("lr_schedule", "sample_every_n_steps", "channels_last", "compile", "memory_reuse", "sample_size", "export"),
    *("style", "data", "model", "loss", "optimizer", "trainer", "paths"),
)


def check_train_config(cfg: Any) -> None:
    """Every numeric and named setting of a training config (see `configs/train.yaml`), before anything loads."""
    _check_no_misspelt_setting(cfg)
    if cfg.seed is not None:
        whole_number(cfg.seed, "seed", minimum=0)
    for key in ("checkpoint_every_n_steps", "sample_every_n_steps"):
        whole_number(cfg[key], key)
    # The network's smallest input (its 9x9 first layer pads by reflection): a smaller sample stopped the run
    # at its first sample, after training, with no model kept.
    whole_number(cfg.sample_size, "sample_size", minimum=8)
    if isinstance(cfg.get("experiment"), Mapping):
        raise ConfigError(
            "experiment: the experiment file's settings sit under an `experiment:` key, where nothing reads them; "
            "start the file with the line `# @package _global_`"
        )
    keep = cfg.get("checkpoint_keep", 1)
    if keep != -1:
        whole_number(keep, "checkpoint_keep (or -1 for all)", minimum=0)
    check_style_node(cfg.style, "style")  # before the loss weights, which read the style's
    whole_number(cfg.style.size, "style.size")  # against the painting's own shape: training/sizes.py
    for key in ("content_weight", "style_weight", "tv_weight", "temporal_weight", "temporal_flow", "temporal_noise"):
        if key not in cfg.loss:
            continue
        value = cfg.loss[key]
        if key == "temporal_weight" and isinstance(value, Mapping):  # one weight per style, by name
            for name, weight in value.items():
                positive_number(weight, f"loss.temporal_weight.{name}", allow_zero=True)
        else:
            positive_number(value, f"loss.{key}", allow_zero=True)
    if "temporal_motion" in cfg.loss:
        from stylenet.losses.temporal import MOTIONS  # here: model files load through this module, losses do not

        one_of(cfg.loss.temporal_motion, "loss.temporal_motion", list(MOTIONS))
    if "temporal_seam" in cfg.loss:
        whole_number(cfg.loss.temporal_seam, "loss.temporal_seam", minimum=0)
    if not isinstance(cfg.loss.get("temporal_detach", False), bool):
        raise ConfigError(f"loss.temporal_detach must be true or false, not {cfg.loss.temporal_detach!r}")
    # Resolved again once the run is built; here to refuse a bad value before the photos decode.
    resolve_speed(cfg.get("channels_last", "auto"), cfg.get("compile", "auto"), cfg.trainer.get("precision", "32"))
    _check_trainer(cfg.trainer)
    _check_data(cfg.data)
    check_network_config(cfg.model)
    if "lr" in cfg.optimizer:  # 0 would train for hours without changing a weight
        positive_number(cfg.optimizer.lr, "optimizer.lr")
    positive_number(cfg.get("style_row_lr_scale", 1.0), "style_row_lr_scale")
    one_of(cfg.get("init_trains", "norms"), "init_trains", ["norms", "all"])
    positive_number(cfg.get("init_shared_lr_scale", 1.0), "init_shared_lr_scale")
    positive_number(cfg.get("init_keep_weight", 0.0), "init_keep_weight", allow_zero=True)
    one_of(cfg.get("lr_schedule", "constant"), "lr_schedule", list(LR_SCHEDULES))
    decay = cfg.get("weight_average_decay")
    if decay is not None and not (_is_number(decay) and 0 < decay < 1):
        raise ConfigError(f"weight_average_decay must be a number between 0 and 1 (e.g. 0.999) or null, not {decay!r}")


def check_optimizer(factory: Callable[..., Any]) -> None:
    """The optimizer's own checks (negative weight decay, betas...) now, not at the first step."""
    try:
        factory([torch.zeros(1, requires_grad=True)])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"optimizer: {error}") from None
