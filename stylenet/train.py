"""`train(cfg)`: wires configured parts into a Lightning run; it computes nothing itself."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import hydra.errors
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from stylenet import run_record
from stylenet.atomic_write import folder_problem, replacing
from stylenet.checkpoint import (
    move_aside,
    read_lightning_checkpoint,
    save_inference_checkpoint,
    style_metadata,
    styles_of,
)
from stylenet.errors import ConfigError, StylenetError
from stylenet.hardware import resolve_precision, resolve_speed
from stylenet.inference.export import FORMATS, SUFFIXES, ExportError, check_exportable, export
from stylenet.inference.model import load_network
from stylenet.losses.perceptual import check_loss_config
from stylenet.networks.style_rows import append_style, bake_style, norm_parameters
from stylenet.networks.transformer import TransformerNet
from stylenet.style_list import WEIGHT_KEYS, selected_styles, temporal_weights
from stylenet.styles import find_style_image, load_style_image
from stylenet.training.callbacks import SampleImages, StepProgressBar, Throughput
from stylenet.training.module import NetworkMismatchError, StyleTransferModule, network_mismatch, time_budget
from stylenet.training.resume_checks import (
    check_resumed_lr_schedule,
    check_resumed_styles,
    check_resumed_time,
    resumed_finetune,
)
from stylenet.training.sizes import check_sizes_fit
from stylenet.training.style_keeper import StyleKeeper
from stylenet.validation import check_optimizer, check_train_config, duration

log = logging.getLogger(__name__)


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
            network = _instantiate(cfg.model, "model", num_styles=len(selected_styles(cfg)))
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
        if (saved == 1.0) != (_shared_lr_scale(cfg) == 1.0):
            trains = "all" if _adds_with_all_weights(cfg) else "norms"
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
    check_optimizer(_instantiate(cfg.optimizer, "optimizer"))
    _check_not_shipped_folder(cfg)
    _check_run_folder(cfg)
    _check_kept_models_dir(cfg)


# Notices every run printed that tell a user nothing: the VGG of the loss is frozen in eval mode on purpose,
# the worker count is data.num_workers as chosen, the deprecation is inside Lightning, the model summary's
# size estimate is not what anyone reads it for, the tips advertise services, and a resume that sets no
# time budget leaves out the budget's Timer on purpose.
_NOISE_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode at the start of training",
    r".* does not have many workers",
    r"This DataLoader will create \d+ worker processes",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Precision \S+ is not supported by the model summary",
    r"Be aware that when using `ckpt_path`, .*Please add the following callbacks: \['Timer'\]",
)
_NOISE_LOGS = ("💡 Tip:", "TPU available: False")


@contextlib.contextmanager
def quiet_lightning_notices() -> Iterator[None]:
    """Drops Lightning's notices that say nothing to a user of this project while the block runs.

    For entry points only (it changes process-wide warning filters); what matters still shows.
    """

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOISE_LOGS)

    lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with warnings.catch_warnings():
        for message in _NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        lightning_log.addFilter(keep)
        try:
            yield
        finally:
            lightning_log.removeFilter(keep)


def _instantiate(node: DictConfig, group: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with our own errors and refused arguments as one line, not Hydra's wrapping."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as error:
        if isinstance(error.__cause__, StylenetError):
            raise error.__cause__ from None
        if isinstance(error.__cause__, (TypeError, ValueError)):  # e.g. an argument the class does not take
            raise ConfigError(f"{group}: {error.__cause__}") from error
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
    check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)

    # Everything that can fail on bad input is built before the trainer starts.
    styles = selected_styles(cfg)
    style_images = [load_style_image(style["image"], style["size"]) for style in styles]
    datamodule = _instantiate(cfg.data, "data")
    datamodule.setup("fit")
    base, base_styles = _init_model(cfg)
    finetuned, steps_before = _finetune_model(cfg)
    resumed_steps, resumed_config = (
        resumed_finetune(read_lightning_checkpoint(cfg.ckpt_path)) if cfg.ckpt_path else (0, None)
    )
    steps_before = steps_before or resumed_steps  # the fine-tuned model's steps carry on
    if finetuned is not None:
        network = finetuned
    elif resumed_config is not None:
        network = TransformerNet(**resumed_config)
    elif base is None:
        network = _instantiate(cfg.model, "model", num_styles=len(styles))
    else:
        network = _new_style_network(base, trains_all=_adds_with_all_weights(cfg))
    if len(styles) == 1:
        loss = _instantiate(_loss_node(cfg), "loss", style_image=style_images[0])
    else:  # each style its own weights
        weights = {key: [style[key] for style in styles] for key in WEIGHT_KEYS}
        loss = _instantiate(_loss_node(cfg), "loss", style_image=style_images, **weights)
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
        keeper=_style_keeper(cfg, base),
        shared_lr_scale=_shared_lr_scale(cfg),
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
        final = network if base is None else append_style(base, network.cpu(), _adds_with_all_weights(cfg))
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


def _init_model(cfg: DictConfig) -> tuple[TransformerNet | None, list[dict[str, Any]]]:
    """The trained model `init=` names (None without it) and the styles it holds."""
    if not cfg.get("init"):
        return None, []
    base, metadata = load_network(cfg.init)
    if _adds_with_all_weights(cfg):
        log.info("adding style %r to %s: every weight trains, its styles kept", cfg.style.name, cfg.init)
    else:
        log.info("adding style %r to %s: only the instance norms train", cfg.style.name, cfg.init)
    return base, styles_of(metadata)


def _adds_with_all_weights(cfg: DictConfig) -> bool:
    return bool(cfg.get("init")) and cfg.get("init_trains", "norms") == "all"


def _style_keeper(cfg: DictConfig, base: TransformerNet | None) -> StyleKeeper | None:
    """The term holding `base`'s styles while every weight trains for a new one (None where nothing needs it)."""
    if base is None or not _adds_with_all_weights(cfg) or not cfg.init_keep_weight:
        return None
    return StyleKeeper(base, cfg.init_keep_weight)


def _shared_lr_scale(cfg: DictConfig) -> float:
    """The learning rate of the weights that are not style rows, as a multiple of optimizer.lr."""
    return float(cfg.init_shared_lr_scale) if _adds_with_all_weights(cfg) else 1.0


def _finetune_model(cfg: DictConfig) -> tuple[TransformerNet | None, int]:
    """The trained model `finetune=` names, every weight trainable (None without it), and its steps so far.

    Its own network settings hold (model.* are ignored); the step counter and the optimizer start afresh."""
    if not cfg.get("finetune"):
        return None, 0
    network, metadata = load_network(cfg.finetune)
    log.info("fine-tuning %s (%d steps so far): every weight trains", cfg.finetune, metadata.get("steps") or 0)
    return network.train().requires_grad_(True), int(metadata.get("steps") or 0)


def _new_style_network(base: TransformerNet, trains_all: bool) -> TransformerNet:
    """A single-style copy of `base` starting from the mean of its styles, with everything but the norms frozen
    (unless `trains_all`).

    Dumoulin et al. 2017: a new style needs only its own scale and shift, the rest being shared."""
    network = bake_style(base, torch.full((base.num_styles,), 1.0 / base.num_styles)).train()
    if trains_all:
        return network.requires_grad_(True)
    network.requires_grad_(False)
    for parameter in norm_parameters(network):
        parameter.requires_grad_(True)
    return network


def _loss_node(cfg: DictConfig) -> DictConfig:
    """`cfg.loss` as the loss takes it: a temporal weight per style by name becomes a list in training order."""
    node = OmegaConf.to_container(cfg.loss, resolve=True)
    weights = temporal_weights(cfg)
    node["temporal_weight"] = weights[0] if isinstance(weights, list) and len(weights) == 1 else weights
    return OmegaConf.create(node)


def _loss_summary(cfg: DictConfig) -> dict[str, Any]:
    """The loss definition a model was trained with, so evaluation can reproduce it."""
    return OmegaConf.to_container(cfg.loss, resolve=True)  # type: ignore[return-value]
