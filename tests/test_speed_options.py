"""Training speed options change speed only: the same loss, the same gradients."""

from __future__ import annotations

import pytest
import torch

from stylenet.errors import ConfigError
from stylenet.hardware import resolve_speed
from stylenet.losses.perceptual import build_perceptual_loss
from stylenet.networks.transformer import TransformerNet
from stylenet.training.module import StyleTransferModule


def test_auto_turns_speed_options_on_with_half_precision_only() -> None:
    assert resolve_speed("auto", "auto", "bf16-mixed") == (True, True)
    assert resolve_speed("auto", "auto", "16-mixed") == (True, True)
    assert resolve_speed("auto", "auto", "32-true") == (False, False)
    assert resolve_speed(True, False, "32-true") == (True, False)
    with pytest.raises(ConfigError, match="compile"):
        resolve_speed("auto", "sometimes", "bf16-mixed")


def _module(
    channels_last: bool,
    compile: bool,
    temporal_weight: float = 0.0,
    motion: str = "smooth",
    downsample: str = "strided",
) -> StyleTransferModule:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, downsample=downsample)
    style = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    loss = build_perceptual_loss(
        style,
        "random",
        ["relu2_2"],
        ["relu1_1", "relu2_1"],
        1.0,
        10.0,
        1.0,
        temporal_weight=temporal_weight,
        temporal_motion=motion,
    )
    return StyleTransferModule(network, loss, torch.optim.Adam, {"name": "t"}, channels_last, compile).train()


@pytest.mark.parametrize(
    ("channels_last", "compile", "temporal_weight", "motion", "downsample"),
    [
        (True, False, 0.0, "smooth", "strided"),
        (True, True, 0.0, "smooth", "strided"),
        (True, True, 50.0, "smooth", "strided"),
        (True, True, 50.0, "objects", "strided"),
        (True, True, 50.0, "smooth", "blur"),
    ],
)
@pytest.mark.slow
def test_speed_options_give_the_same_loss_and_gradients(
    channels_last: bool, compile: bool, temporal_weight: float, motion: str, downsample: str
) -> None:
    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    reference = _module(False, False, temporal_weight, motion, downsample)
    fast = _module(channels_last, compile, temporal_weight, motion, downsample)
    results = []
    for module in (reference, fast):
        x = images.contiguous(memory_format=torch.channels_last) if module.channels_last else images
        torch.manual_seed(3)  # the same moved copies for the temporal term
        terms = module.train_loss(x, None, module._temporal_pair(x))
        assert (terms.temporal is not None) == (temporal_weight > 0)
        total = terms.total
        total.backward()
        grads = torch.cat([p.grad.flatten() for p in module.network.parameters()])
        results.append((total.detach(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, rtol=1e-4)
    assert torch.allclose(grads_a, grads_b, rtol=1e-3, atol=1e-5 * grads_a.abs().max().item())
    conv_weight = next(p for p in fast.network.parameters() if p.dim() == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.slow
def test_compiled_bf16_training_of_several_styles_with_the_temporal_term_keeps_finite_gradients() -> None:
    """A full-width network of two styles at 192 px, bf16 autocast, the temporal term: the compiled step's
    gradients are finite and those of the eager fast step. Gram matrices with a backward of their own (an
    autograd.Function) made every gradient of this compiled step NaN on a Xeon with AMX, and the first step
    of every such training run diverged; the smaller networks of the test above never showed it."""
    images = torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(2))
    images = images.contiguous(memory_format=torch.channels_last)
    grads = []
    for compile in (False, True):
        torch.manual_seed(0)
        network = TransformerNet(num_residual_blocks=1, num_styles=2)
        paintings = [torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
        layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
        loss = build_perceptual_loss(paintings, "random", ["relu2_2"], layers, 1.0, 10.0, 1.0, temporal_weight=75.0)
        described = [{"name": "a"}, {"name": "b"}]
        module = StyleTransferModule(network, loss, torch.optim.Adam, described, True, compile).train()
        torch.manual_seed(3)  # the same moved copies for the temporal term
        with torch.autocast("cpu", dtype=torch.bfloat16):
            terms = module.train_loss(images, torch.tensor([0, 1]), module._temporal_pair(images))
        terms.total.backward()
        grads.append(torch.cat([p.grad.flatten() for p in module.network.parameters()]))
    eager, compiled = grads
    assert torch.isfinite(compiled).all()
    assert (compiled - eager).norm() < 0.05 * eager.norm()
