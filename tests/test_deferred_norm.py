"""A norm and ReLU left to the next convolution compute what normalising and rectifying first would."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from stylenet.networks import deferred_norm, low_memory_ops
from stylenet.networks.transformer import ConditionalInstanceNorm, InstanceNorm, TransformerNet


def _images(*shape: int, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _random_norms(network: TransformerNet, negative: int = 0) -> TransformerNet:
    """Every norm gets scales in (0.5, 1.5) and shifts in (-0.5, 0.5); `negative` channels of each a negative scale."""
    generator = torch.Generator().manual_seed(3)
    for module in network.modules():
        if isinstance(module, (InstanceNorm, ConditionalInstanceNorm)):
            module.weight.data = torch.rand(module.weight.shape, generator=generator, dtype=torch.float64) + 0.5
            module.bias.data = torch.rand(module.bias.shape, generator=generator, dtype=torch.float64) - 0.5
            module.weight.data[..., :negative] *= -1
    return network


def _pair(**config) -> tuple[TransformerNet, TransformerNet]:
    """The same float64 network twice: plain layers, and fast layers (which defer where they can)."""
    torch.manual_seed(0)
    plain = _random_norms(TransformerNet(**config).double().eval())
    return plain, copy.deepcopy(plain).use_fast_ops().requires_grad_(False)


@pytest.fixture(autouse=True)
def _every_size(monkeypatch) -> None:
    monkeypatch.setattr(deferred_norm, "MIN_BYTES", 0)  # deferred at these small sizes too


def _count_deferrals(monkeypatch) -> list[int]:
    calls = []
    real = deferred_norm.normalise_rectify

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(deferred_norm, "normalise_rectify", counted)
    return calls


def _instance_norm_relu(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.relu(F.instance_norm(y, weight=weight, bias=bias, eps=1e-5))


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (3, 2), (9, 1)])
def test_a_folded_convolution_equals_the_convolution_of_the_normalised_rectified_input(kernel, stride) -> None:
    y = _images(1, 6, 23, 30) * 4 - 1
    weight, bias = torch.rand(6, dtype=torch.float64) + 0.1, torch.randn(6, dtype=torch.float64)
    conv_weight, conv_bias = torch.randn(5, 6, kernel, kernel, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    pad = (kernel // 2,) * 4
    normalised = _instance_norm_relu(y, weight, bias)
    expected = F.conv2d(F.pad(normalised, pad, mode="reflect"), conv_weight, conv_bias, stride)
    with torch.inference_mode():
        deferred = deferred_norm.normalise_rectify(y.clone(), weight, bias, 1e-5)
        folded_weight, folded_bias = deferred_norm.fold(conv_weight, conv_bias, deferred)
        result = F.conv2d(F.pad(deferred.values, pad, mode="reflect"), folded_weight, folded_bias, stride)
    torch.testing.assert_close(result, expected, rtol=1e-10, atol=1e-10)


def test_the_statistics_are_those_of_instance_norm_in_fp32_for_a_bf16_activation() -> None:
    y = (_images(1, 8, 40, 50, dtype=torch.float32) * 3 + 5).to(torch.bfloat16)  # a mean far from zero
    weight, bias = torch.full((8,), 0.7), torch.full((8,), 0.2)
    with torch.inference_mode():
        deferred = deferred_norm.normalise_rectify(y.clone(), weight, bias, 1e-5)
    applied = deferred.values.float() * deferred.scale.view(1, -1, 1, 1) + deferred.shift.view(1, -1, 1, 1)
    assert deferred.scale.dtype == deferred.shift.dtype == torch.float32
    torch.testing.assert_close(applied, _instance_norm_relu(y.float(), weight, bias), rtol=0, atol=0.02)


@pytest.mark.parametrize(
    "config",
    [{}, {"downsample": "blur"}, {"num_styles": 3}, {"width": 0.5, "num_residual_blocks": 2}],
    ids=["default", "blur", "three styles", "narrow"],
)
@pytest.mark.parametrize("size", [(1, 3, 37, 50), (1, 3, 64, 64)])
def test_the_network_defers_nine_norms_and_computes_the_same(monkeypatch, config, size) -> None:
    monkeypatch.setattr(low_memory_ops, "LARGE_BYTES", 0)  # the border forms as well, at these small sizes
    plain, fast = _pair(**config)
    calls = _count_deferrals(monkeypatch)
    x = _images(*size)
    style = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64) if config.get("num_styles") else None
    with torch.inference_mode():
        expected, result = plain(x, style), fast(x, style)
    blocks = config.get("num_residual_blocks", 5)
    assert len(calls) == 2 + blocks + 2  # the encoder's first two, each block's middle, both upsamplings
    torch.testing.assert_close(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("case", "deferrals"),
    [("two images", 0), ("a style per image", 0), ("a negative scale", 0), ("gradients", 0), ("transposed", 8)],
)
def test_what_cannot_be_deferred_runs_the_plain_way_with_the_same_result(monkeypatch, case, deferrals) -> None:
    config = {"num_styles": 2} if case == "a style per image" else {}
    if case == "transposed":
        config["upsample"] = "transposed"
    plain, fast = _pair(**config)
    if case == "a negative scale":
        for network in (plain, fast):
            _random_norms(network, negative=1)
    calls = _count_deferrals(monkeypatch)
    x = _images(2 if case in ("two images", "a style per image") else 1, 3, 33, 41)
    style = torch.tensor([[1.0, 0.0], [0.3, 0.7]], dtype=torch.float64) if case == "a style per image" else None
    with torch.set_grad_enabled(case == "gradients"):
        expected, result = plain(x, style), fast.requires_grad_(case == "gradients")(x, style)
    # transposed: the last upsampling cannot take a deferred input, so the first one is not deferred
    assert len(calls) == deferrals
    torch.testing.assert_close(result, expected, rtol=1e-9, atol=1e-9)


def test_bf16_with_deferred_norms_stays_close_to_fp32() -> None:
    torch.manual_seed(0)
    network = _random_norms(TransformerNet().double().eval()).float()
    fast = copy.deepcopy(network).to(torch.bfloat16, memory_format=torch.channels_last).use_fast_ops()
    x = _images(1, 3, 96, 128, dtype=torch.float32)
    with torch.inference_mode():
        expected = network(x)
        result = fast(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    psnr = 10 * torch.log10(1 / (result - expected).pow(2).mean())
    assert psnr > 35, f"bf16 with deferred norms: {psnr:.1f} dB against fp32"


def test_the_plain_network_never_defers(monkeypatch) -> None:
    plain, _ = _pair()
    calls = _count_deferrals(monkeypatch)
    with torch.inference_mode():
        plain(_images(1, 3, 40, 40))
    assert not calls


@pytest.mark.parametrize("how", ["pre-hook", "hook", "replaced forward"])
def test_a_hooked_or_replaced_norm_runs_its_forward(monkeypatch, how) -> None:
    # Tiling measures whole-image statistics with pre-hooks, then replaces the norms' forward.
    plain, fast = _pair()
    seen = []
    norm = fast.encoder[0][1]
    if how == "pre-hook":
        norm.register_forward_pre_hook(lambda module, inputs: seen.append(module))
    elif how == "hook":
        norm.register_forward_hook(lambda module, inputs, output: seen.append(module))
    else:
        forward = norm.forward
        norm.forward = lambda x: seen.append(norm) or forward(x)
    calls = _count_deferrals(monkeypatch)
    x = _images(1, 3, 40, 44)
    with torch.inference_mode():
        expected, result = plain(x), fast(x)
    assert seen == [norm]
    assert len(calls) == 8  # the other eight still deferred
    torch.testing.assert_close(result, expected, rtol=1e-9, atol=1e-9)


def test_small_activations_are_not_deferred(monkeypatch) -> None:
    monkeypatch.setattr(deferred_norm, "MIN_BYTES", 40 * 40 * 32 * 8)  # the encoder's first activation only
    plain, fast = _pair()
    calls = _count_deferrals(monkeypatch)
    x = _images(1, 3, 40, 40)
    with torch.inference_mode():
        expected, result = plain(x), fast(x)
    assert len(calls) == 2  # the encoder's first and the last upsampling's (32 channels at full size)
    torch.testing.assert_close(result, expected, rtol=1e-9, atol=1e-9)


def test_a_channel_the_relu_always_zeroes_stays_finite_in_fp16() -> None:
    # Its threshold, -t/s, is beyond fp16's largest value: the clamp would make the channel infinite.
    y = (_images(1, 4, 20, 24, dtype=torch.float32) * 2).to(torch.float16)
    weight = torch.tensor([1.0, 1e-6, 1.0, 1.0])  # channel 1: a tiny scale...
    bias = torch.tensor([0.1, -1.0, 0.0, -0.2])  # ...and a negative shift: relu(...) is 0 everywhere
    conv_weight = torch.randn(3, 4, 3, 3)
    expected = F.conv2d(F.pad(_instance_norm_relu(y.float(), weight, bias), (1,) * 4, mode="reflect"), conv_weight)
    with torch.inference_mode():
        deferred = deferred_norm.normalise_rectify(y, weight, bias, 1e-5)
        folded_weight, folded_bias = deferred_norm.fold(conv_weight.half(), None, deferred)
        result = F.conv2d(
            F.pad(deferred.values.float(), (1,) * 4, mode="reflect"), folded_weight.float(), folded_bias.float()
        )
    assert torch.isfinite(deferred.values).all()
    torch.testing.assert_close(result, expected, rtol=0, atol=0.05)
