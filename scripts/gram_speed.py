"""What the Gram matrices of `stylenet.losses.gram` save against their form before.

    python scripts/gram_speed.py [--pairs 16] [--size 256] [--batch 4]

First the Gram matrices of the default style layers alone (relu1_1 to relu5_1 of a batch at
`--size` px, channels-last bf16 features as the fast training path makes them), forward and
backward: now (the features read in place and multiplied in bf16) and before (copied to
(B, C, HW) in float32); autograd takes both backwards. Then the project's compiled bf16 training
step (the one `stylenet benchmark` times), built twice in one process, with each form, and called
in turn; prints the median of the pairs' ratios. Memory reuse is on, as `train.py` sets it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from paired_steps import compare_with_default_step

from stylenet.benchmark.training import project_train_step_factory
from stylenet.losses import perceptual
from stylenet.losses.gram import gram_matrix

# (channels, downsampling) of VGG19's relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1
STYLE_LAYERS = [(64, 1), (128, 2), (256, 4), (512, 8), (512, 16)]


def gram_before(features: torch.Tensor) -> torch.Tensor:
    """The Gram matrix as computed before: features copied to (B, C, HW) in float32, autograd's backward."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()  # (B, C, HW)
    with torch.autocast(device_type=features.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)  # (B, C, C)


def grams_alone(batch: int, size: int, calls: int = 10) -> None:
    features = [
        torch.rand(batch, c, size // down, size // down).bfloat16().contiguous(memory_format=torch.channels_last)
        for c, down in STYLE_LAYERS
    ]
    forms: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "now": gram_matrix,
        "before": gram_before,
    }
    times: dict[str, list[float]] = {name: [] for name in forms}
    for call in range(calls + 1):
        for name, form in forms.items():
            leaves = [f.detach().requires_grad_() for f in features]
            start = time.perf_counter()
            sum(form(f).square().sum() for f in leaves).backward()
            if call:  # the first is a warm-up
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(seconds) * 1e3 for name, seconds in times.items()}
    print(
        f"Gram matrices of the five style layers, batch {batch} at {size} px, forward and backward: "
        f"now {medians['now']:.1f} ms, before {medians['before']:.1f} ms"
    )


def step_before(batch: int, size: int) -> Callable[[], None]:
    """The training step with the Gram matrices computed as before. Compilation reads the loss's
    `gram_matrix` when it traces, at the first call, so every call runs with it swapped in."""
    step = project_train_step_factory(batch, size, "bf16", "cpu", channels_last=True, compile=True)

    def with_the_gram_before() -> None:
        perceptual.gram_matrix = gram_before
        try:
            step()
        finally:
            perceptual.gram_matrix = gram_matrix

    return with_the_gram_before


def main() -> None:
    compare_with_default_step(__doc__.splitlines()[0], grams_alone, "Gram now", ("Gram before", step_before))


if __name__ == "__main__":
    main()
