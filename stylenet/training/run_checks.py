"""A run's checks before it loads anything: every mistake in its config, paths, starting model and checkpoint
that can be found without loading photos, paintings or networks, as one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from stylenet.atomic_write import folder_problem
from stylenet.checkpoint import read_lightning_checkpoint, styles_of
from stylenet.errors import ConfigError
from stylenet.inference.export import FORMATS, ExportError, check_exportable
from stylenet.inference.model import load_network
from stylenet.losses.perceptual import check_loss_config
from stylenet.networks.transformer import TransformerNet
from stylenet.style_list import selected_styles, temporal_weights
from stylenet.styles import find_style_image
from stylenet.training.instantiate import instantiate
from stylenet.training.module import NetworkMismatchError, network_mismatch
from stylenet.training.resume_checks import (
    check_resumed_lr_schedule,
    check_resumed_styles,
    check_resumed_time,
    resumed_finetune,
)
from stylenet.training.sizes import check_sizes_fit
from stylenet.training.start_weights import adds_with_all_weights, shared_lr_scale
from stylenet.validation import check_optimizer, check_train_config


def _check_paths(cfg: DictConfig) -> None:
    if cfg.ckpt_path and Path(cfg.ckpt_path).is_dir():  # a run's folder, most likely: name the file in it
        last = Path(cfg.ckpt_path) / "checkpoints" / "last.ckpt"
        found = (
            f"; did you mean ckpt_path={last}?" if last.is_file() else " (runs keep theirs in <run dir>/checkpoints)"
        )
        raise ConfigError(f"ckpt_path={cfg.ckpt_path} is a folder, not a checkpoint{found}")
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint (runs keep theirs in <run dir>/checkpoints)")
    if not cfg.get("styles") and OmegaConf.is_missing(cfg.style, "image"):
        raise ConfigError("style=custom needs style.image=/path/to/painting.jpg")
    for style in selected_styles(cfg):  # every painting found now, not after the first ones have loaded
        find_style_image(style["image"])
    temporal_weights(cfg)  # a weight per style names each style of the run
    if cfg.get("finetune"):
        _check_finetune(cfg)
    if cfg.get("init"):
        _check_init(cfg)
    elif cfg.get("init_trains", "norms") != "norms":
        raise ConfigError(f"init_trains={cfg.init_trains} is for adding a style to a trained model: set init=MODEL")
    unknown = set(cfg.export.formats) - set(FORMATS)
    if unknown:
        raise ConfigError(f"export.formats: unknown {sorted(unknown)}; use any of {list(FORMATS)}")
    if cfg.export.formats:
        try:
            check_exportable(cfg.model.get("upsample", "nearest"))
        except ExportError as error:
            raise ConfigError(f"export.formats={list(cfg.export.formats)}: {error}; or set export.formats=[]") from None


def _check_run_folder(cfg: DictConfig) -> None:
    """A run never writes over another run's checkpoints: only a resume of one of them continues in its folder."""
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    held = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    if not held or (cfg.ckpt_path and Path(cfg.ckpt_path).resolve().parent == folder.resolve()):
        return
    last = folder / "last.ckpt"
    raise ConfigError(
        f"paths.output_dir={cfg.paths.output_dir} holds another run's checkpoints: resume that run with "
        f"ckpt_path={last if last.exists() else held[-1]}, or choose another folder"
    )


def _check_init(cfg: DictConfig) -> None:
    """A model to add a style to: readable, and not holding that style already."""
    _, metadata = load_network(cfg.init)
    names = [style["name"] for style in styles_of(metadata)]
    if cfg.style.name in names:
        raise ConfigError(f"init={cfg.init} already holds a style named {cfg.style.name!r}; set style.name=NEW_NAME")


def _check_finetune(cfg: DictConfig) -> None:
    """A model to train on: readable, holding the styles this run trains, in their order."""
    if cfg.get("init"):
        raise ConfigError("finetune= trains every weight of a model, init= adds a style to one: use one of them")
    if cfg.ckpt_path:  # the checkpoint's weights, steps and optimizer state would replace the model's
        raise ConfigError(
            "ckpt_path= resumes a run (a fine-tuning one too, without finetune=), finetune= starts a new one "
            "from a model: give one of them"
        )
    _, metadata = load_network(cfg.finetune)
    held = [style["name"] for style in styles_of(metadata)]
    wanted = [style["name"] for style in selected_styles(cfg)]
    if held != wanted:
        option = f"style={held[0]}" if len(held) == 1 else f"styles=[{','.join(held)}]"
        raise ConfigError(f"finetune={cfg.finetune} holds the styles {held}, this run trains {wanted}; set {option}")


def _check_not_shipped_folder(cfg: DictConfig) -> None:
    """Training writes nothing among the shipped models: a package update would replace it, or ship it."""
    from stylenet import pretrained

    shipped = pretrained.LOCATION.parent.resolve()
    for key in ("kept_models_dir", "output_dir"):
        # output_dir is Hydra's run dir, unknown until Hydra runs: checked where it is known.
        value = OmegaConf.select(cfg, f"paths.{key}", throw_on_resolution_failure=False)
        if value is None:
            continue
        folder = Path(str(value)).resolve()
        if folder == shipped or folder.is_relative_to(shipped):
            raise ConfigError(f"paths.{key}={value} is the shipped models' folder; choose another folder")


def _check_kept_models_dir(cfg: DictConfig) -> None:
    """Found now, not after hours of training; nothing is made here (saving the model makes the folder), so
    a refused run, or a sweep's check of its every job, leaves no folder behind."""
    problem = folder_problem(Path(cfg.paths.kept_models_dir))
    if problem:
        raise ConfigError(f"paths.kept_models_dir={cfg.paths.kept_models_dir}: {problem}")


def _check_resume(cfg: DictConfig) -> None:
    """A checkpoint of another network would fail only inside the fit, after the run has written its folder;
    one that already reached trainer.max_steps would train nothing and still replace the kept model."""
    if not cfg.ckpt_path:
        return
    checkpoint = read_lightning_checkpoint(cfg.ckpt_path)
    check_resumed_styles(cfg, checkpoint)
    step = checkpoint["global_step"]
    if step >= cfg.trainer.max_steps:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} is already at step {step} (trainer.max_steps={cfg.trainer.max_steps}): "
            f"nothing to train; to train longer, set trainer.max_steps to more than {step}"
        )
    check_resumed_time(cfg, checkpoint)
    with torch.device("meta"):  # shapes only: nothing is allocated for the comparison
        resumed_config = resumed_finetune(checkpoint)[1]
        if cfg.get("init"):  # the run trains a single-style copy of the init model's network
            config = {**load_network(cfg.init)[0].config.to_dict(), "num_styles": 1}
            network = TransformerNet(**config)
        elif resumed_config is not None:
            network = TransformerNet(**resumed_config)
        else:
            network = instantiate(cfg.model, "model", num_styles=len(selected_styles(cfg)))
        mismatch = network_mismatch(checkpoint, network)
    if mismatch:  # found now, before the run writes anything (loading checks again, for any other caller)
        raise NetworkMismatchError(mismatch)
    _check_resumed_row_lr(cfg, checkpoint, network.num_styles)
    check_resumed_lr_schedule(cfg, checkpoint)


def _check_resumed_row_lr(cfg: DictConfig, checkpoint: dict[str, Any], num_styles: int) -> None:
    """The style rows train in a parameter group of their own only when their scale is not 1, and an
    optimizer state of one grouping does not load into the other."""
    if cfg.get("init"):  # a single-style network: its groups are the shared weights' and the rows'
        saved = checkpoint.get("hyper_parameters", {}).get("shared_lr_scale", 1.0)  # older checkpoints: 1
        if (saved == 1.0) != (shared_lr_scale(cfg) == 1.0):
            trains = "all" if adds_with_all_weights(cfg) else "norms"
            raise ConfigError(
                f"ckpt_path={cfg.ckpt_path} added its style with other weights training than init_trains={trains}"
            )
        return
    if num_styles == 1:
        return
    saved = checkpoint.get("hyper_parameters", {}).get("style_row_lr_scale", 1.0)  # older checkpoints: 1
    if (saved == 1.0) != (cfg.style_row_lr_scale == 1.0):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} trained its style rows with style_row_lr_scale={saved:g}; "
            f"resume with style_row_lr_scale={saved:g}"
        )


def check_config(cfg: DictConfig) -> None:
    """Every mistake in `cfg` that can be found without loading photos, paintings or networks, as one line."""
    check_train_config(cfg)
    check_loss_config(cfg.loss)
    _check_paths(cfg)
    check_sizes_fit(cfg)
    _check_resume(cfg)
    check_optimizer(instantiate(cfg.optimizer, "optimizer"))
    _check_not_shipped_folder(cfg)
    _check_run_folder(cfg)
    _check_kept_models_dir(cfg)
