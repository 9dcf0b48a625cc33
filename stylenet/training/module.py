"""The LightningModule: wires a transformation network to its perceptual loss."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Timer

from stylenet.checkpoint import NETWORK_PREFIX, style_metadata, weights_problem
from stylenet.errors import StylenetError
from stylenet.losses.perceptual import LossTerms, PerceptualLoss
from stylenet.networks.style_rows import norm_parameters
from stylenet.networks.transformer import TransformerNet
from stylenet.training.style_keeper import StyleKeeper
from stylenet.training.weight_average import WeightAverage, take_from_checkpoint

log = logging.getLogger(__name__)

# Lightning checkpoints leave out the frozen loss network and the frozen model a style is added to
# (`StyleKeeper`): both are rebuilt from the config.
_FROZEN_PREFIXES = ("loss.", "keeper.")


class NonFiniteLossError(StylenetError):
    """Training diverged; the run stops so that the last good checkpoint survives."""


class NetworkMismatchError(StylenetError):
    """A checkpoint's network is not the configured one: loading it would leave layers random."""


def network_mismatch(checkpoint: dict[str, Any], network: TransformerNet) -> str | None:
    """What differs between the network weights of a Lightning `checkpoint` and `network`; None if nothing."""
    saved = {k[len(NETWORK_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(NETWORK_PREFIX)}
    problem = weights_problem(network, saved)
    if problem is None:
        return None
    trained = checkpoint.get("stylenet", {}).get("model", {})
    settings = [
        f"model.{key}={trained[key]} (configured: {value})"
        for key, value in network.config.to_dict().items()
        if trained.get(key, value) != value
    ]
    if settings:
        return f"the checkpoint's network was trained with {', '.join(settings)}; use the settings it was trained with"
    return (
        f"the checkpoint's network differs from the configured one ({problem}); "
        "use the model.* settings it was trained with"
    )


class StyleTransferModule(pl.LightningModule):
    # A training loss this many times its running mean stops the run like a NaN (see `_watch_finite`).
    JUMP_FACTOR = 100.0
    JUMP_AFTER_STEPS = 50

    def __init__(
        self,
        network: TransformerNet,
        loss: PerceptualLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        style: dict[str, Any] | list[dict[str, Any]],
        channels_last: bool = False,
        compile: bool = False,
        check_finite_every_n_steps: int = 50,
        loss_definition: dict[str, Any] | None = None,
        style_row_lr_scale: float = 1.0,
        steps_before: int = 0,
        weight_average_decay: float | None = None,
        lr_schedule: str = "constant",
        keeper: StyleKeeper | None = None,
        shared_lr_scale: float = 1.0,
    ):
        """`style`: what describes the style (name, image, size), or a list of them, one per row of a
        network of several styles. Each training image is stylised in a style drawn at random (Dumoulin
        et al. 2017), so a batch mixes styles; each validation photo is scored in every style.

        `channels_last` keeps images, network and VGG in NHWC, the layout oneDNN's bf16 kernels and
        Tensor Cores run natively; `compile` runs the training loss (network and VGG, forward and
        backward) through torch.compile. Either also switches the network and VGG to their fast
        layers (`use_fast_ops`). All change speed only: the loss definition is the same.

        `loss_definition` (the loss config) is written into checkpoints, so that `stylenet evaluate` scores a
        `.ckpt` on the loss it was trained with.

        `style_row_lr_scale` multiplies the learning rate of the instance norms' scale and shift in a
        network of several styles: each row is trained by only the images drawn in its style.
        `shared_lr_scale` multiplies that of every other weight (a style added to a trained model with
        its shared weights training too learns them slowly, its own row fast).

        `keeper`: while a style is added to a trained model with every weight training, the term that holds
        that model's old styles (`StyleKeeper`), added to each training step's loss; None: no such term.

        `steps_before`: the steps the network had trained before this run (a fine-tuned model's), written
        into checkpoints so that a model read from one counts them too.

        `weight_average_decay`: keep an exponential moving average of the network's weights (`WeightAverage`)
        with this decay, validate and sample with it, and write it as the checkpoints' network (their own
        weights ride along for resuming); None: the network as trained.

        `lr_schedule`: "constant", or "cosine": the learning rate falls along a half cosine to 0 at the
        trainer's `max_steps` (the resumed run's, where it raises them), or at the end of its time
        budget (`max_time`) where that comes first, so the last steps settle instead of hovering at
        the full step size, also on a machine too slow to reach `max_steps` in the budget.

        A NaN/inf loss stops the run on every rank together; it is looked for every
        `check_finite_every_n_steps` steps, before every checkpoint and at the end of training."""
        super().__init__()
        self.save_hyperparameters(ignore=["network", "loss", "optimizer", "loss_definition", "steps_before", "keeper"])
        self.network = network
        self.loss = loss
        self.optimizer_factory = optimizer
        self.strict_loading = False  # checkpoints hold no loss-network weights; on_load_checkpoint checks the network
        self.styles = list(style) if isinstance(style, list) else [style]
        self.loss_definition = loss_definition
        self.style_row_lr_scale = style_row_lr_scale
        self.shared_lr_scale = shared_lr_scale
        self.keeper = keeper
        self.steps_before = steps_before
        self.weight_average_decay = weight_average_decay
        self.lr_schedule = lr_schedule
        self._budget_spent = 0.0  # share of the trainer's time budget spent, as rank 0 last read it
        self.weight_average: WeightAverage | None = None  # made on the network's device, at the start of fitting
        self._loaded_average: dict[str, Any] | None = None
        self._own_weights: dict[str, torch.Tensor] | None = None  # the weights as trained, while the average validates
        if len(self.styles) != network.num_styles:
            raise ValueError(f"{len(self.styles)} style(s) described for a network of {network.num_styles}")
        self.example_input_array = torch.zeros(1, 3, 256, 256)
        self.skipped_images = 0
        self.check_finite_every_n_steps = check_finite_every_n_steps
        # stage -> () tensor: the first step whose loss was NaN/inf (inf if none yet). Kept on the
        # device, so that watching the loss costs no synchronisation.
        self._first_non_finite: dict[str, torch.Tensor] = {}
        self._running_loss: torch.Tensor | None = None  # () on the device: the training loss's running mean
        self.channels_last = channels_last
        self.network.use_fast_ops(channels_last or compile)
        self.loss.vgg.use_fast_ops(channels_last or compile)
        if channels_last:
            self.network.to(memory_format=torch.channels_last)
            self.loss.to(memory_format=torch.channels_last)
        # Training steps only: validation runs rarely and in no_grad, which would need a second compilation.
        # Static shapes: Inductor (torch 2.14) fails on this graph with dynamic ones, and batches are
        # always full (unusable photos are replaced), only an epoch's last one compiling once more.
        self.train_loss = torch.compile(self._loss_terms, dynamic=False) if compile else self._loss_terms

    def _loss_terms(
        self,
        images: torch.Tensor,
        styles: torch.Tensor | None = None,
        pair: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
    ) -> LossTerms:
        """`styles` (B,): the style of each image, for a network of several (None for one); `pair`: the
        moved copies of `images`, their flow and the mask of pixels to compare for the temporal term
        (`_temporal_pair`), or None."""
        weights = None if styles is None else F.one_hot(styles, self.network.num_styles).float()  # (B, S)
        output = self.network(images, weights)
        terms = self.loss(output, images, styles)
        if pair is not None:
            moved, flow, compared = pair
            terms.temporal = self.loss.temporal(self.network(moved, weights), output, flow, styles, compared)
        return terms

    def _temporal_pair(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """The moved, noisy copies of `images` the temporal term compares with (None when it is off).

        Drawn here, in eager code: random numbers inside a compiled graph come from another generator."""
        if self.loss.temporal_pair is None:
            return None
        moved, flow, compared = self.loss.temporal_pair(images)
        if self.channels_last:
            moved = moved.contiguous(memory_format=torch.channels_last)
        return moved, flow, compared

    def forward(self, images: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """`style`: the styles' weights for a network of several, (S,) or (B, S); default: the first style."""
        if style is None and self.network.num_styles > 1:
            style = F.one_hot(torch.tensor(0, device=images.device), self.network.num_styles).float()
        return self.network(images, style)

    def _common_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        images = batch["images"]  # (B, 3, S, S) in [0, 1]; never empty, unusable photos are replaced
        if stage == "train":
            self.skipped_images += batch["skipped"]
            self.log("data/skipped_images", float(self.skipped_images), reduce_fx="max")
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        num_styles = self.network.num_styles
        if stage == "train":
            styles = torch.randint(num_styles, (len(images),), device=images.device) if num_styles > 1 else None
            terms = self.train_loss(images, styles, self._temporal_pair(images))
            self._log_terms(terms, stage, len(images))
            if self.keeper is not None:  # eager: the old style changes every step
                keep = self.keeper(self.network, images)
                self.log("train/keep_loss", keep, batch_size=len(images), on_step=True, on_epoch=False)
                total = terms.total + keep
                self._watch_finite(total, stage)
                return total
        elif num_styles == 1:
            terms = self._loss_terms(images, None, self._temporal_pair(images))
            self._log_terms(terms, stage, len(images))
        else:  # every photo in every style: per-style curves, and their mean as the run's figure
            pair = self._temporal_pair(images)
            per_style = [
                self._loss_terms(images, torch.full((len(images),), i, device=images.device), pair)
                for i in range(num_styles)
            ]
            for style, style_terms in zip(self.styles, per_style, strict=True):
                self._log_terms(style_terms, f"{stage}/{style['name']}", len(images), prog_bar=False)
            keys = ("content", "style", "tv") + (("temporal",) if per_style[0].temporal is not None else ())
            terms = LossTerms(*(sum(getattr(t, k) for t in per_style) / num_styles for k in keys))
            self._log_terms(terms, stage, len(images))
        self._watch_finite(terms.total, stage)
        return terms.total

    def _log_terms(self, terms: LossTerms, prefix: str, batch_size: int, prog_bar: bool = True) -> None:
        metrics = {f"{prefix}/{name}": value for name, value in terms.as_dict().items()}
        on_step = prefix == "train"
        self.log_dict(
            metrics,
            batch_size=batch_size,
            prog_bar=prog_bar,
            on_step=on_step,
            on_epoch=not on_step,
            sync_dist=not on_step,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "val")

    def _watch_finite(self, total: torch.Tensor, stage: str) -> None:
        """Remember the first step whose loss was NaN/inf, or (training) jumped `JUMP_FACTOR` times over its
        running mean, without reading the loss on the host.

        A finite jump diverges a run as surely as a NaN: a five-style run's loss went from 4.4 to 408,000 in
        one step and the network never recovered (docs/multistyle.md). Stopping keeps the last good checkpoint."""
        total = total.detach().float()
        bad = ~torch.isfinite(total)
        if stage == "train":
            mean = self._running_loss if self._running_loss is not None else total
            if self.global_step >= self.JUMP_AFTER_STEPS:  # not while the first steps still move the loss a lot
                bad = bad | (total > self.JUMP_FACTOR * mean)
            self._running_loss = torch.where(bad, mean, 0.98 * mean + 0.02 * total)  # (): bad steps left out
        step = torch.where(bad, float(self.global_step), math.inf)
        seen = self._first_non_finite.get(stage)
        self._first_non_finite[stage] = step if seen is None else torch.minimum(seen, step)

    def _stop_if_non_finite(self, stage: str) -> None:
        """Raise on every rank if any rank saw a non-finite loss.

        A rank that raised alone would leave the others waiting in their next all-reduce, so all
        ranks call this at the same points and agree through one reduction (its one device sync)."""
        if self._trainer is None:
            return
        seen = self._first_non_finite.get(stage)
        if seen is None:
            seen = torch.tensor(math.inf, device=self.device)
        step = self.trainer.strategy.reduce(seen.clone(), reduce_op="min").item()
        if math.isfinite(step):
            raise NonFiniteLossError(
                f"{stage} loss became NaN or inf, or jumped over {self.JUMP_FACTOR:g}x its running mean, at step "
                f"{int(step)} (the run diverged); clip the gradients (e.g. trainer.gradient_clip_val=50), or lower "
                "optimizer.lr or the loss weights, then resume from the last checkpoint with "
                "ckpt_path=.../checkpoints/last.ckpt"
            )

    def on_fit_start(self) -> None:
        if self.weight_average_decay is None or self.weight_average is not None:
            return
        self.weight_average = WeightAverage(self.network, self.weight_average_decay)
        if self._loaded_average is not None:
            self.weight_average.load_state_dict(self._loaded_average)
            self._loaded_average = None

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The network holds the weight average inside the block (its own weights without one)."""
        if self.weight_average is None:
            yield
            return
        with self.weight_average.swapped_in(self.network):
            yield

    def keep_averaged_weights(self) -> None:
        """Makes the weight average the network's own weights for good: the end of training."""
        if self.weight_average is not None:
            self.weight_average.copy_to(self.network)
            self.weight_average = None

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here, not in on_train_batch_end: callbacks (checkpoints, samples) run that hook first and must see
        # this step in the average; and here it is once per step when several batches make one.
        if self.weight_average is not None:
            self.weight_average.update(self.network)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this before it clips (trainer.gradient_clip_val): the norm the batch asked
        # for, whose rare huge values are what clipping is for.
        norms = [torch.linalg.vector_norm(p.grad) for p in self.network.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.linalg.vector_norm(torch.stack(norms)), on_step=True, on_epoch=False)
        if self.lr_schedule == "cosine":
            # Every rank is at this point together; Lightning steps the schedule right after the
            # optimizer, for the next step.
            self._budget_spent = self._read_budget_spent()

    def on_validation_epoch_start(self) -> None:
        if self.weight_average is not None:
            self._own_weights = self.weight_average.swap_in(self.network)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # The global step (already advanced past this batch), not batch_idx: that restarts every
        # epoch, and a small folder's epochs would never reach the check. Every rank has the same one.
        if self.global_step % self.check_finite_every_n_steps == 0:
            self._stop_if_non_finite("train")

    def on_train_end(self) -> None:
        self._stop_if_non_finite("train")

    def on_validation_epoch_end(self) -> None:
        if self._own_weights is not None:
            WeightAverage.swap_out(self.network, self._own_weights)
            self._own_weights = None
        self._stop_if_non_finite("val")
        self._first_non_finite.pop("val", None)  # each validation is judged on its own

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer()
        if self.lr_schedule == "constant":
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self._cosine_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        # A resumed run restores each group's last rate, the old end's: a run that raised
        # trainer.max_steps would take its first step at that (0 if the old run had finished).
        if self.lr_schedule == "constant":
            return
        self._budget_spent = self._read_budget_spent()
        for config in self.trainer.lr_scheduler_configs:
            schedule = config.scheduler
            for group, base in zip(schedule.optimizer.param_groups, schedule.base_lrs, strict=True):
                group["lr"] = base * self._cosine_factor(schedule.last_epoch)

    def _cosine_factor(self, step: int) -> float:
        # The trainer's max_steps read at each step, not stored in the schedule: a resumed run that
        # raises trainer.max_steps falls to 0 at the new end (a checkpoint does not keep this method).
        end = self.trainer.max_steps
        progress = max(min(step, end) / end, self._budget_spent)
        return 0.5 * (1 + math.cos(math.pi * progress))

    def _read_budget_spent(self) -> float:
        """The share of the trainer's time budget (`max_time`, Lightning's Timer: a resumed run's
        earlier time included) spent so far, 0 to 1; 0 without a budget. Rank 0's clock, sent to
        every rank: ranks whose clocks differ by a millisecond would otherwise step at different
        rates and their weights drift apart."""
        timer = time_budget(self.trainer)
        if timer is None:  # the same on every rank (one config): no collective, no sync a step
            return 0.0
        elapsed = timer.time_elapsed()
        spent = min(1.0, elapsed / (elapsed + timer.time_remaining()))
        return float(self.trainer.strategy.broadcast(spent, src=0))

    def _optimizer(self) -> torch.optim.Optimizer:
        # Only what may train: adding a style to a trained model freezes all but the norms.
        trainable = [p for p in self.network.parameters() if p.requires_grad]
        row_scale = self.style_row_lr_scale if self.network.num_styles > 1 else 1.0
        if row_scale == 1.0 and self.shared_lr_scale == 1.0:
            return self.optimizer_factory(trainable)
        rows = {id(p) for p in norm_parameters(self.network)}
        optimizer = self.optimizer_factory(
            [
                {"params": [p for p in trainable if id(p) not in rows]},
                {"params": [p for p in trainable if id(p) in rows]},
            ]
        )
        optimizer.param_groups[0]["lr"] *= self.shared_lr_scale
        optimizer.param_groups[1]["lr"] *= row_scale
        return optimizer

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Loading cannot be strict (no loss network in checkpoints), so a network that does not
        # match would load in part and keep the rest random: stop instead.
        mismatch = network_mismatch(checkpoint, self.network)
        if mismatch:
            raise NetworkMismatchError(mismatch)
        # An averaging run's checkpoint: the network resumes from its weights as trained, the average goes on.
        loaded = take_from_checkpoint(checkpoint, NETWORK_PREFIX)
        if loaded is None:
            return
        if self.weight_average_decay is None:
            log.info("the checkpoint's weight average is not kept: this run does not average (weight_average_decay)")
        elif self.weight_average is not None:  # strategies that restore after the fit has started
            self.weight_average.load_state_dict(loaded)
        else:
            self._loaded_average = loaded

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._stop_if_non_finite("train")  # never write a diverged network over the last good one
        checkpoint["state_dict"] = {
            k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(_FROZEN_PREFIXES)
        }
        if self.weight_average is not None:
            self.weight_average.put_in_checkpoint(checkpoint, NETWORK_PREFIX, self._own_weights)
        # Enough for inference code to rebuild the network from a .ckpt without Lightning.
        checkpoint["stylenet"] = {"model": self.network.config.to_dict(), **style_metadata(self.styles)}
        if self.loss_definition is not None:
            checkpoint["stylenet"]["loss"] = self.loss_definition
        if self.steps_before:
            checkpoint["stylenet"]["steps_before"] = self.steps_before


def time_budget(trainer: pl.Trainer) -> Timer | None:
    """Lightning's Timer for `trainer.max_time`; None without a budget."""
    return next((c for c in trainer.callbacks if isinstance(c, Timer) and c.time_remaining() is not None), None)
