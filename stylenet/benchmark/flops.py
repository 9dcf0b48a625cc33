"""FLOPs of a frame and of a training step, as the networks are defined, counted on shapes alone.

`torch.utils.flop_counter.FlopCounterMode` counts 2 x the multiply-adds of every convolution
and matrix product that runs (backward passes included), from shapes only; on the meta device
nothing is computed or allocated, so a 1080p frame or a full training step costs nothing to
count, and the count is exact for that shape. The count is of the plain eager network: the
fast paths may do less arithmetic (sub-pixel upsampling, `stylenet.networks.fast_ops`), which
then shows as a higher effective rate.
"""

from __future__ import annotations

from typing import Any

from stylenet.benchmark.training import REFERENCE as TRAIN_REFERENCE


def count_flops(run: Any) -> int:
    """FLOPs of one call of `run` (2 x multiply-adds of its convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def frame_flops(config: dict[str, Any] | None, height: int, width: int) -> int:
    """FLOPs of one (height, width) frame through `TransformerNet(**config)`, or the reference network's (None)."""
    import torch

    from stylenet.benchmark.reference import reference_network
    from stylenet.networks.transformer import TransformerNet

    with torch.device("meta"):  # parameters and frame as shapes only
        network = reference_network() if config is None else TransformerNet(**config).eval()
        frame = torch.empty(1, 3, height, width)
    with torch.no_grad():
        return count_flops(lambda: network(frame))


def training_step_flops(variant: str, batch: int, size: int) -> int:
    """FLOPs of one training step: the transformer forward and backward plus VGG forward and backward, as it runs.

    Every project variant is counted as its plain fp32 step (the same arithmetic, before
    precision, layout and compilation change how fast it runs); the reference as its own step.
    """
    import torch

    from stylenet.benchmark.reference import reference_train_step_factory
    from stylenet.benchmark.training import project_train_step_factory

    with torch.device("meta"):
        if variant == TRAIN_REFERENCE:
            step = reference_train_step_factory(batch, size, "meta")
        else:
            step = project_train_step_factory(batch, size, "fp32", "meta")
    return count_flops(step)
