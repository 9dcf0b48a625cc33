"""`train(cfg)`: wires configured parts into a Lightning run; it computes nothing itself."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import hydra.errors
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from stylenet.checkpoint import save_inference_checkpoint
from stylenet.errors import ConfigError, StylenetError
from stylenet.hardware import resolve_precision, resolve_speed
from stylenet.inference.export import FORMATS, SUFFIXES, export
from stylenet.styles import load_style_image
from stylenet.training.callbacks import SampleImages, StepProgressBar, Throughput
from stylenet.training.module import StyleTransferModule

log = logging.getLogger(__name__)


def _check_paths(cfg: DictConfig) -> None:
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint (runs keep theirs in <run dir>/checkpoints)")
    if OmegaConf.is_missing(cfg.style, "image"):
        raise ConfigError("style=custom needs style.image=/path/to/painting.jpg")
    unknown = set(cfg.export.formats) - set(FORMATS)
    if unknown:
        raise ConfigError(f"export.formats: unknown {sorted(unknown)}; use any of {list(FORMATS)}")
    kept = Path(cfg.paths.kept_models_dir)
    try:  # found now, not after hours of training
        kept.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"paths.kept_models_dir={kept} cannot be created: {error.strerror}") from error


def _instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, re-raising our own errors unwrapped so they stay one line."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as error:
        if isinstance(error.__cause__, StylenetError):
            raise error.__cause__ from None
        raise


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
    _check_paths(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)

    # Everything that can fail on bad input is built before the trainer starts.
    style_image = load_style_image(cfg.style.image, cfg.style.size)
    datamodule = _instantiate(cfg.data)
    datamodule.setup("fit")
    network = _instantiate(cfg.model)
    loss = _instantiate(cfg.loss, style_image=style_image)
    style = {"name": cfg.style.name, "image": str(cfg.style.image), "size": cfg.style.size}
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    channels_last, compile = resolve_speed(cfg.channels_last, cfg.compile, precision)
    module = StyleTransferModule(
        network, loss, hydra.utils.instantiate(cfg.optimizer), style, channels_last=channels_last, compile=compile
    )

    logger = TensorBoardLogger(str(output_dir), name="tensorboard", version="", default_hp_metric=False)
    samples = SampleImages(datamodule.val_batch(cfg.sample_size), output_dir, cfg.sample_every_n_steps)
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="step_{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint_every_n_steps,
        save_last=True,
        save_top_k=1,  # with no monitor: the latest periodic checkpoint, beside last.ckpt
    )
    callbacks = [checkpoints, samples, Throughput(), LearningRateMonitor("step")]
    if cfg.trainer.enable_progress_bar:
        callbacks.append(StepProgressBar())
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        precision=precision,
        logger=logger,
        callbacks=callbacks,
    )
    if trainer.is_global_zero:
        logger.experiment.add_text("config", f"```yaml\n{OmegaConf.to_yaml(cfg, resolve=True)}\n```")

    started = time.perf_counter()
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
    skipped = datamodule.skipped_at_setup + module.skipped_images
    if skipped:
        log.warning("skipped %d unusable image(s) in the dataset", skipped)

    result: dict[str, Any] = {"steps": trainer.global_step, "val": val, "skipped_images": skipped}
    if trainer.is_global_zero:
        log.info("trained to step %d in %.1f min", trainer.global_step, fit_seconds / 60)
        logger.log_hyperparams(_flat_hparams(cfg), metrics=val)
        metadata = {"style": style, "steps": trainer.global_step, "val": val, "loss": _loss_summary(cfg)}
        run_model = save_inference_checkpoint(output_dir / f"{cfg.style.name}.pt", network, metadata)
        kept_model = save_inference_checkpoint(
            Path(cfg.paths.kept_models_dir) / f"{cfg.style.name}.pt", network, metadata
        )
        result["exported"] = [
            export(network, metadata, kept_model.with_suffix(SUFFIXES[fmt]), fmt) for fmt in cfg.export.formats
        ]
        result |= {
            "model": kept_model,
            "run_model": run_model,
            "sample": samples.final_path,
            "tensorboard": logger.log_dir,
        }
        log.info("model: %s (also %s)", kept_model, run_model)
        log.info("sample: %s", samples.final_path)
        log.info("TensorBoard: tensorboard --logdir %s", output_dir)
    logger.finalize("success")
    return result


def _loss_summary(cfg: DictConfig) -> dict[str, Any]:
    """The loss definition a model was trained with, so evaluation can reproduce it."""
    return OmegaConf.to_container(cfg.loss, resolve=True)  # type: ignore[return-value]
