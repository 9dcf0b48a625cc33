"""The LightningModule: wires a transformation network to its perceptual loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch

from stylenet.errors import StylenetError
from stylenet.losses.perceptual import LossTerms, PerceptualLoss
from stylenet.networks.transformer import TransformerNet

# Lightning checkpoints leave out the frozen loss network: it is rebuilt from the config.
_LOSS_PREFIX = "loss."


class NonFiniteLossError(StylenetError):
    """Training diverged; the run stops so that the last good checkpoint survives."""


class StyleTransferModule(pl.LightningModule):
    def __init__(
        self,
        network: TransformerNet,
        loss: PerceptualLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        style: dict[str, Any],
        channels_last: bool = False,
        compile: bool = False,
    ):
        """`channels_last` keeps images, network and VGG in NHWC, the layout oneDNN's bf16 kernels and
        Tensor Cores run natively; `compile` runs the training loss (network and VGG, forward and
        backward) through torch.compile. Either also switches the network and VGG to their fast
        layers (`use_fast_ops`). All change speed only: the loss definition is the same."""
        super().__init__()
        self.save_hyperparameters(ignore=["network", "loss", "optimizer"])
        self.network = network
        self.loss = loss
        self.optimizer_factory = optimizer
        self.strict_loading = False  # checkpoints hold no loss-network weights
        self.example_input_array = torch.zeros(1, 3, 256, 256)
        self.skipped_images = 0
        self.channels_last = channels_last
        self.network.use_fast_ops(channels_last or compile)
        self.loss.vgg.use_fast_ops(channels_last or compile)
        if channels_last:
            self.network.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        # Training steps only: validation runs rarely and in no_grad, which would need a second compilation.
        # Static shapes: Inductor (torch 2.14) fails on this graph with dynamic ones, and batch shapes
        # change only when a batch loses unusable photos, each new shape then compiling once.
        self.train_loss = torch.compile(self._loss_terms, dynamic=False) if compile else self._loss_terms

    def _loss_terms(self, images: torch.Tensor) -> LossTerms:
        return self.loss(self.network(images), images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def _common_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor | None:
        images = batch["images"]  # (B, 3, S, S) in [0, 1]
        if stage == "train":
            self.skipped_images += batch["skipped"]
            self.log("data/skipped_images", float(self.skipped_images), reduce_fx="max")
        if len(images) == 0:
            return None  # every photo of this batch was unusable: Lightning skips the step
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        terms = self.train_loss(images) if stage == "train" else self._loss_terms(images)
        total = terms.total
        if not torch.isfinite(total):
            raise NonFiniteLossError(
                f"{stage} loss became {total.item()} at step {self.global_step}; lower optimizer.lr or the loss "
                "weights, then resume from the last checkpoint with ckpt_path=.../checkpoints/last.ckpt"
            )
        metrics = {f"{stage}/{name}": value for name, value in terms.as_dict().items()}
        on_step = stage == "train"
        self.log_dict(
            metrics, batch_size=len(images), prog_bar=True, on_step=on_step, on_epoch=not on_step, sync_dist=not on_step
        )
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        return self._common_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        return self._common_step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.network.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(_LOSS_PREFIX)}
        # Enough for inference code to rebuild the network from a .ckpt without Lightning.
        checkpoint["stylenet"] = {"model": self.network.config.to_dict(), "style": dict(self.hparams.style)}
