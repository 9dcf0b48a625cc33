"""The weights a run starts from: a trained model to add a style to (`init=`) or to fine-tune (`finetune=`),
and which of its weights train and how fast."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig

from stylenet.checkpoint import styles_of
from stylenet.inference.model import load_network
from stylenet.networks.style_rows import bake_style, norm_parameters
from stylenet.networks.transformer import TransformerNet
from stylenet.training.style_keeper import StyleKeeper

log = logging.getLogger(__name__)


def init_model(cfg: DictConfig) -> tuple[TransformerNet | None, list[dict[str, Any]]]:
    """The trained model `init=` names (None without it) and the styles it holds."""
    if not cfg.get("init"):
        return None, []
    base, metadata = load_network(cfg.init)
    if adds_with_all_weights(cfg):
        log.info("adding style %r to %s: every weight trains, its styles kept", cfg.style.name, cfg.init)
    else:
        log.info("adding style %r to %s: only the instance norms train", cfg.style.name, cfg.init)
    return base, styles_of(metadata)


def adds_with_all_weights(cfg: DictConfig) -> bool:
    return bool(cfg.get("init")) and cfg.get("init_trains", "norms") == "all"


def style_keeper(cfg: DictConfig, base: TransformerNet | None) -> StyleKeeper | None:
    """The term holding `base`'s styles while every weight trains for a new one (None where nothing needs it)."""
    if base is None or not adds_with_all_weights(cfg) or not cfg.init_keep_weight:
        return None
    return StyleKeeper(base, cfg.init_keep_weight)


def shared_lr_scale(cfg: DictConfig) -> float:
    """The learning rate of the weights that are not style rows, as a multiple of optimizer.lr."""
    return float(cfg.init_shared_lr_scale) if adds_with_all_weights(cfg) else 1.0


def finetune_model(cfg: DictConfig) -> tuple[TransformerNet | None, int]:
    """The trained model `finetune=` names, every weight trainable (None without it), and its steps so far.

    Its own network settings hold (model.* are ignored); the step counter and the optimizer start afresh."""
    if not cfg.get("finetune"):
        return None, 0
    network, metadata = load_network(cfg.finetune)
    log.info("fine-tuning %s (%d steps so far): every weight trains", cfg.finetune, metadata.get("steps") or 0)
    return network.train().requires_grad_(True), int(metadata.get("steps") or 0)


def new_style_network(base: TransformerNet, trains_all: bool) -> TransformerNet:
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
