"""`train(cfg)`: wires configured parts into a Lightning run; it computes nothing itself."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from stylenet import run_record
from stylenet.atomic_write import replacing
from stylenet.checkpoint import move_aside, read_lightning_checkpoint, save_inference_checkpoint, style_metadata
from stylenet.errors import StylenetError
from stylenet.hardware import resolve_precision, resolve_speed
from stylenet.inference.export import SUFFIXES, export
from stylenet.networks.style_rows import append_style
from stylenet.networks.transformer import TransformerNet
from stylenet.style_list import WEIGHT_KEYS, selected_styles, temporal_weights
from stylenet.styles import load_style_image
from stylenet.training.callbacks import SampleImages, StepProgressBar, Throughput
from stylenet.training.instantiate import instantiate
from stylenet.training.module import StyleTransferModule, time_budget
from stylenet.training.resume_checks import resumed_finetune
from stylenet.training.run_checks import check_config
from stylenet.training.start_weights import (
    adds_with_all_weights,
    finetune_model,
    init_model,
    new_style_network,
    shared_lr_scale,
    style_keeper,
)
from stylenet.validation import duration

log = logging.getLogger(__name__)


def _note_shipped_name(name: str, kept_model: Path) -> None:
    """A kept model named like a shipped style: say which one `stylenet stylize NAME` runs."""
    from stylenet import pretrained

    try:
        shipped = name == pretrained.BUNDLE or name in pretrained.shipped().styles
    except StylenetError:  # a damaged shipped file is no reason to fail a finished training
        return
    if shipped:
        log.info(
            "%r is also a shipped style: `stylenet stylize %s` still runs the shipped model; pass this one's path "
            "(stylenet stylize %s ...)",
            name,
            name,
            kept_model,
        )


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The config as flat scalar hparams for TensorBoard's HPARAMS tab."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "_target_":
                    walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node if isinstance(node, (int, float, str, bool)) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one style network as `cfg` describes; returns where its outputs went and final val losses."""
    check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)

    # Everything that can fail on bad input is built before the trainer starts.
    styles = selected_styles(cfg)
    for style in styles:  # allowed (a control run, say), but never what a style network is trained for
        if style["style_weight"] == 0:
            log.warning(
                "%s: its style weight is 0, so the network learns no style, only to copy the photo", style["name"]
            )
    style_images = [load_style_image(style["image"], style["size"]) for style in styles]
    datamodule = instantiate(cfg.data, "data")
    datamodule.setup("fit")
    base, base_styles = init_model(cfg)
    finetuned, steps_before = finetune_model(cfg)
    resumed_steps, resumed_config = (
        resumed_finetune(read_lightning_checkpoint(cfg.ckpt_path)) if cfg.ckpt_path else (0, None)
    )
    steps_before = steps_before or resumed_steps  # the fine-tuned model's steps carry on
    if finetuned is not None:
        network = finetuned
    elif resumed_config is not None:
        network = TransformerNet(**resumed_config)
    elif base is None:
        network = instantiate(cfg.model, "model", num_styles=len(styles))
    else:
        network = new_style_network(base, trains_all=adds_with_all_weights(cfg))
    if len(styles) == 1:
        loss = instantiate(_loss_node(cfg), "loss", style_image=style_images[0])
    else:  # each style its own weights
        weights = {key: [style[key] for style in styles] for key in WEIGHT_KEYS}
        loss = instantiate(_loss_node(cfg), "loss", style_image=style_images, **weights)
    described = [{**style, "image": str(style["image"])} for style in styles]
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    channels_last, compile = resolve_speed(cfg.channels_last, cfg.compile, precision)
    module = StyleTransferModule(
        network,
        loss,
        hydra.utils.instantiate(cfg.optimizer),
        described if len(described) > 1 else described[0],
        channels_last=channels_last,
        compile=compile,
        loss_definition=_loss_summary(cfg),
        style_row_lr_scale=cfg.style_row_lr_scale,
        steps_before=steps_before,
        weight_average_decay=cfg.get("weight_average_decay"),
        lr_schedule=cfg.get("lr_schedule", "constant"),
        keeper=style_keeper(cfg, base),
        shared_lr_scale=shared_lr_scale(cfg),
    )

    logger = TensorBoardLogger(str(output_dir), name="tensorboard", version="", default_hp_metric=False)
    samples = SampleImages(
        datamodule.val_batch(cfg.sample_size), output_dir, cfg.sample_every_n_steps, [s["name"] for s in described]
    )
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="step_{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint_every_n_steps,
        save_last=True,
        save_top_k=cfg.get("checkpoint_keep", 1),  # with no monitor: the latest periodic ones (-1: all), and last.ckpt
    )
    callbacks = [checkpoints, samples, Throughput(), LearningRateMonitor("step")]
    budget = duration(cfg.trainer.get("max_time"), "trainer.max_time")
    if cfg.trainer.enable_progress_bar:
        callbacks.append(StepProgressBar())
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        precision=precision,
        logger=logger,
        callbacks=callbacks,
        max_time=budget,  # as a timedelta: Lightning takes no mapping from a config
    )
    if trainer.is_global_zero:
        logger.experiment.add_text("config", f"```yaml\n{OmegaConf.to_yaml(cfg, resolve=True)}\n```")

    started = time.perf_counter()
    run_record.training_started()  # from here on, the run folder's record of its settings is this run's
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    fit_seconds = time.perf_counter() - started
    if trainer.interrupted:
        log.warning(
            "interrupted at step %d; resume with ckpt_path=%s", trainer.global_step, checkpoints.last_model_path
        )
        return {"interrupted": True, "last_checkpoint": checkpoints.last_model_path}
    # A final Lightning checkpoint, so that a longer run can continue from exactly here.
    trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt", weights_only=False)
    val = {k: float(v) for k, v in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items()}
    module.keep_averaged_weights()  # the model written below is the average, the network validated above
    skipped = datamodule.skipped_at_setup + module.skipped_images
    if skipped:
        log.warning("skipped %d unusable image(s) in the dataset", skipped)

    out_of_time = _out_of_time(trainer)
    result: dict[str, Any] = {
        "steps": trainer.global_step,
        "val": val,
        "skipped_images": skipped,
        "out_of_time": out_of_time,
    }
    if trainer.is_global_zero:
        log.info("trained to step %d in %.1f min", trainer.global_step, fit_seconds / 60)
        if out_of_time:
            log.info(
                "stopped by the time budget (%s, trainer.max_time) before trainer.max_steps=%d; "
                "to train on, resume with ckpt_path=%s and a larger trainer.max_time",
                budget,
                cfg.trainer.max_steps,
                output_dir / "checkpoints" / "last.ckpt",
            )
        logger.log_hyperparams(_flat_hparams(cfg), metrics=val)
        final = network if base is None else append_style(base, network.cpu(), adds_with_all_weights(cfg))
        all_styles = base_styles + described
        metadata = {
            **style_metadata(all_styles),
            "steps": steps_before + trainer.global_step,
            "val": val,
            "loss": _loss_summary(cfg),
        }
        name = "+".join(style["name"] for style in all_styles)
        run_model = output_dir / f"{name}.pt"
        with _reported_write(run_model, f"the run's latest checkpoint is {output_dir / 'checkpoints' / 'last.ckpt'}"):
            save_inference_checkpoint(run_model, final, metadata)
        kept_model = Path(cfg.paths.kept_models_dir) / f"{name}.pt"
        with _reported_write(kept_model, f"the run's copy is {run_model}"):
            save_inference_checkpoint(kept_model, final, metadata)
        result["exported"] = []
        for fmt in cfg.export.formats:
            exported = kept_model.with_suffix(SUFFIXES[fmt])
            with _reported_write(exported, f"the model is {kept_model}"), replacing(exported) as partial:
                export(final, metadata, partial, fmt)
                move_aside(exported)  # kept like the .pt: never written over, and only once the new one is whole
            result["exported"].append(exported)
        result |= {
            "model": kept_model,
            "run_model": run_model,
            "sample": samples.final_path,
            "tensorboard": logger.log_dir,
        }
        log.info("model: %s (also %s)", kept_model, run_model)
        _note_shipped_name(name, kept_model)
        log.info("sample: %s", samples.final_path)
        log.info("TensorBoard: tensorboard --logdir %s", output_dir)
    logger.finalize("success")
    return result


@contextlib.contextmanager
def _reported_write(path: Path, kept_elsewhere: str) -> Iterator[None]:
    """A failed write of `path` at the end of a run (a full disk, say) as one line saying where the trained
    network still is: the training is not lost, and the writers keep the file they would have replaced."""
    try:
        yield
    except OSError as error:
        raise StylenetError(f"could not write {path} ({error.strerror or error}); {kept_elsewhere}") from None


def _out_of_time(trainer: pl.Trainer) -> bool:
    timer = time_budget(trainer)
    return trainer.global_step < trainer.max_steps and timer is not None and timer.time_remaining() <= 0


def _loss_node(cfg: DictConfig) -> DictConfig:
    """`cfg.loss` as the loss takes it: a temporal weight per style by name becomes a list in training order."""
    node = OmegaConf.to_container(cfg.loss, resolve=True)
    weights = temporal_weights(cfg)
    node["temporal_weight"] = weights[0] if isinstance(weights, list) and len(weights) == 1 else weights
    return OmegaConf.create(node)


def _loss_summary(cfg: DictConfig) -> dict[str, Any]:
    """The loss definition a model was trained with, so evaluation can reproduce it."""
    return OmegaConf.to_container(cfg.loss, resolve=True)  # type: ignore[return-value]
