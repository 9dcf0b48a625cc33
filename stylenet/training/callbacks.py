"""Small callbacks: stylised samples, throughput and a progress bar that counts steps."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image


class SampleImages(pl.Callback):
    """Stylises fixed validation photos every `every_n_steps` and at the end of training.

    The grid (top row: photos, then a row per style) goes to ``<run dir>/samples/`` (the final
    one also to ``sample.png``) and to TensorBoard: ``val/stylized`` for a single-style network,
    ``val/stylized/<style>`` (photos above that style) for each style of a network of several.
    """

    def __init__(self, photos: torch.Tensor, out_dir: str | Path, every_n_steps: int, styles: list[str] | None = None):
        self.photos = photos  # (V, 3, S, S)
        self.out_dir = Path(out_dir)
        self.every_n_steps = every_n_steps
        self.styles = styles or []
        self.final_path = self.out_dir / "sample.png"

    def _stylize(self, network: torch.nn.Module, device: torch.device) -> list[torch.Tensor]:
        """(V, 3, S, S) per style of `network`."""
        photos = self.photos.to(device)
        if network.num_styles == 1:
            return [network(photos).float().cpu()]
        return [network(photos, row).float().cpu() for row in torch.eye(network.num_styles, device=device)]

    @rank_zero_only
    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, final: bool) -> None:
        network = pl_module.network
        was_training = network.training
        network.eval()
        with torch.no_grad(), pl_module.averaged_weights():  # the network the run will keep
            per_style = self._stylize(network, pl_module.device)
        network.train(was_training)
        grid = make_grid(torch.cat([self.photos, *per_style]), nrow=len(self.photos), padding=2)
        step = trainer.global_step
        if trainer.logger is not None and len(per_style) == 1:
            trainer.logger.experiment.add_image("val/stylized", grid, step)
        elif trainer.logger is not None:
            names = self.styles if len(self.styles) == len(per_style) else [str(i) for i in range(len(per_style))]
            for name, stylized in zip(names, per_style, strict=True):
                pair = make_grid(torch.cat([self.photos, stylized]), nrow=len(self.photos), padding=2)
                trainer.logger.experiment.add_image(f"val/stylized/{name}", pair, step)
        samples = self.out_dir / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        save_image(grid, samples / f"step_{step:06d}.png")
        if final:
            save_image(grid, self.final_path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, pl_module, final=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, final=True)


class Throughput(pl.Callback):
    """Logs ``train/images_per_sec``: a step's images over the wall time since the step before it ended.

    So everything a training step costs counts, waiting for the loader included, but not
    validation. Timing a step from its start to its end would not do: on a GPU the host gets there
    as soon as the work is queued, long before it is done (on one H200 that read 1,400 images/s where
    400 went through a second).
    """

    def __init__(self) -> None:
        self._last_end: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            images = len(batch["images"]) * trainer.world_size
            pl_module.log("train/images_per_sec", images / (now - self._last_end), prog_bar=True)
        self._last_end = now

    def on_validation_end(self, trainer, pl_module) -> None:
        self._last_end = None  # the next step's time would include the validation's


class StepProgressBar(TQDMProgressBar):
    """The default bar plus the global step, which is what `max_steps` and resumes count."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {"step": f"{trainer.global_step}/{trainer.max_steps}", **metrics}
