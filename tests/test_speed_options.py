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
