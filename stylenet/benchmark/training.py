"""The training steps the benchmark times: the project's default recipe and its speed options."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

REFERENCE = "reference-fp32"  # the PyTorch example's step (stylenet.benchmark.reference)
TRAIN_VARIANTS = {  # name: (precision, channels_last, compile)
    "project-fp32": ("fp32", False, False),
    "project-bf16": ("bf16", False, False),
    "project-fast": ("bf16", True, True),  # what trainer.precision=auto trains with where bf16 is native
    "project-compile-nchw": ("bf16", False, True),
}


def training_variants(native_bf16: bool, cuda: bool) -> list[str]:
    """The project's steps worth timing here: bf16 only where it is native."""
    variants = ["project-fp32"] + (["project-bf16", "project-fast"] if native_bf16 or cuda else [])
    if cuda:  # on GPUs the layout that wins is not settled: measure both
        variants.append("project-compile-nchw")
    return variants


def project_train_step_factory(
    batch_size: int = 4,
    size: int = 256,
    precision: str = "fp32",
    device: Any = "cpu",
    channels_last: bool = False,
    compile: bool = False,
) -> Callable[[], None]:
    """One training step of the project: TransformerNet + PerceptualLoss as configs/ define them, Adam.

    The step is the one `StyleTransferModule` takes (the same module code, so the same speed
    options). The VGG19 weights are random: speed does not depend on them, and nothing downloads.
    """
    import torch

    from stylenet.config_files import default_learning_rate, default_loss
    from stylenet.losses.perceptual import build_perceptual_loss
    from stylenet.networks.transformer import TransformerNet
    from stylenet.training.module import StyleTransferModule

    device = torch.device(device)
    recipe = {k: v for k, v in default_loss().items() if k != "_target_"}
    loss = build_perceptual_loss(torch.rand(1, 3, size, size), **{**recipe, "vgg_weights": "random"})
    module = StyleTransferModule(
        TransformerNet(), loss, torch.optim.Adam, {"name": "random"}, channels_last=channels_last, compile=compile
    ).to(device)
    module.train()
    optimizer = torch.optim.Adam(module.network.parameters(), lr=default_learning_rate())
    content = torch.rand(batch_size, 3, size, size, device=device)
    if channels_last:
        content = content.contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        # As Lightning's bf16-mixed does: autocast around forward and loss, backward outside.
        with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            total = module.train_loss(content).total
        total.backward()
        optimizer.step()

    return step


def train_step(spec: dict[str, Any], device) -> Callable[[], None]:
    """The step `spec["variant"]` names, at `spec`'s batch and size."""
    from stylenet.benchmark.reference import reference_train_step_factory

    if spec["variant"] == REFERENCE:
        return reference_train_step_factory(spec["batch"], spec["size"], device)
    precision, channels_last, compile = TRAIN_VARIANTS[spec["variant"]]
    return project_train_step_factory(spec["batch"], spec["size"], precision, device, channels_last, compile)
