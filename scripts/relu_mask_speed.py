"""What the ReLU operator of compiled CPU training saves (`stylenet.networks.fast_ops.relu`).

    python scripts/relu_mask_speed.py [--pairs 16] [--size 256] [--batch 4]

First a single ReLU of a (batch, 32, size, size) bf16 channels-last tensor, compiled, alone and
also writing the bool mask `x <= 0` that Inductor saves for the backward of a ReLU it fuses.
Then the project's compiled bf16 training step (the one `stylenet benchmark` times), built twice
in one process: with the transformation network's ReLUs as the operator (the default) and as
plain ReLUs that Inductor fuses with the padding after them. The two steps are called in turn,
so that both meet the same minutes of a shared machine; prints the median of the pairs' ratios.
Memory reuse is on, as `train.py` sets it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from paired_steps import compare_with_default_step

from stylenet.benchmark.training import project_train_step_factory
from stylenet.networks import transformer


def median_ms(function: Callable[[], object], calls: int = 10) -> float:
    function()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def relu_alone(batch: int, size: int) -> None:
    x = torch.randn(batch, 32, size, size).bfloat16().contiguous(memory_format=torch.channels_last)
    relu = torch.compile(torch.relu)
    with_mask = torch.compile(lambda t: (torch.relu(t), t <= 0))
    print(
        f"one ReLU of {tuple(x.shape)} bf16, compiled: {median_ms(lambda: relu(x)):.1f} ms; "
        f"writing the bool mask too: {median_ms(lambda: with_mask(x)):.1f} ms"
    )


def fused_relu_step(batch: int, size: int) -> Callable[[], None]:
    """The training step with the network's ReLUs left to Inductor (the form before the operator)."""
    use_fast_ops = transformer.TransformerNet.use_fast_ops

    def without_the_relu_operator(network, enabled=True):
        use_fast_ops(network, enabled)
        for module in network.modules():
            if isinstance(module, transformer.ReLU):
                module.fast = False
        return network

    transformer.TransformerNet.use_fast_ops = without_the_relu_operator
    try:
        return project_train_step_factory(batch, size, "bf16", "cpu", channels_last=True, compile=True)
    finally:
        transformer.TransformerNet.use_fast_ops = use_fast_ops


def main() -> None:
    compare_with_default_step(__doc__.splitlines()[0], relu_alone, "ReLU operator", ("fused ReLU", fused_relu_step))


if __name__ == "__main__":
    main()
