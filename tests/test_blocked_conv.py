"""The output layer's convolution by output blocks equals the plain convolution."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from stylenet.networks import blocked_conv
from stylenet.networks.transformer import TransformerNet

CASES = [
    (torch.float32, torch.contiguous_format),
    (torch.float32, torch.channels_last),
    (torch.bfloat16, torch.channels_last),
]


@pytest.mark.parametrize(("dtype", "layout"), CASES)
@pytest.mark.parametrize("size", [(16, 16), (17, 23), (40, 9), (31, 64)])  # whole blocks, and rows or columns left over
@pytest.mark.parametrize("padding", [0, 4])
@pytest.mark.parametrize("block", [2, 4])
def test_blocked_conv_equals_the_plain_convolution(dtype, layout, size, padding, block) -> None:
    torch.manual_seed(0)
    # 32 input channels, as the default network's output layer (narrower inputs are not blocked)
    x = torch.randn(2, 32, *size).to(dtype).contiguous(memory_format=layout)
    weight, bias = torch.randn(3, 32, 9, 9).to(dtype) / 16, torch.randn(3).to(dtype)
    expected = F.conv2d(x, weight, bias, padding=padding)
    out = blocked_conv.blocked_conv(x, weight, bias, padding, block)
    assert out.shape == expected.shape and out.is_contiguous(memory_format=layout)
    tolerance = {"rtol": 2e-2, "atol": 5e-2} if dtype == torch.bfloat16 else {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(out, expected, **tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [(16, 16), (17, 23)])
@pytest.mark.parametrize("padding", [0, 4])  # 0: as the network calls it, on an already padded input
@pytest.mark.parametrize("block", [2, 4])
def test_the_compiled_inference_form_equals_the_plain_convolution(monkeypatch, dtype, size, padding, block) -> None:
    # Blocks in pixel-major channel order, put in place by `pixels_from_blocks` (here run eagerly)
    monkeypatch.setattr(blocked_conv, "_in_compiled_inference", lambda: True)
    test_blocked_conv_equals_the_plain_convolution(dtype, torch.channels_last, size, padding, block)


def test_only_compiled_inference_takes_the_pixel_major_form(monkeypatch) -> None:
    states = {"compiling": False, "exporting": False}
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: states["compiling"])
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: states["exporting"])
    assert not blocked_conv._in_compiled_inference()  # eager
    states["compiling"] = True
    with torch.no_grad():
        assert blocked_conv._in_compiled_inference()  # compiled inference
        states["exporting"] = True
        assert not blocked_conv._in_compiled_inference()  # an exported file: no custom operator in it
    states["exporting"] = False
    with torch.enable_grad():
        assert not blocked_conv._in_compiled_inference()  # compiled training: the operator has no backward


def test_pixels_from_blocks_is_the_pixel_shuffle_of_the_same_blocks_in_channel_major_order() -> None:
    torch.manual_seed(0)
    channels, block = 3, 4
    blocks = torch.randn(2, block * block * channels, 5, 7).contiguous(memory_format=torch.channels_last)
    channel_major = blocks.unflatten(1, (block * block, channels)).transpose(1, 2).flatten(1, 2)  # (c, p, q)
    out = blocked_conv.pixels_from_blocks(blocks, block)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, F.pixel_shuffle(channel_major, block))


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_pixels_from_blocks_passes_torch_library_checks(layout) -> None:
    blocks = torch.randn(2, 4 * 4 * 3, 5, 7).contiguous(memory_format=layout)
    torch.library.opcheck(torch.ops.stylenet.pixels_from_blocks.default, (blocks, 4))


def test_a_compiled_inference_graph_holds_pixels_from_blocks() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 21, 26).contiguous(memory_format=torch.channels_last)  # a row and columns left over
    weight, bias = torch.randn(3, 32, 9, 9) / 16, torch.randn(3)
    graphs = []

    def recording(graph: torch.fx.GraphModule, example_inputs):
        graphs.append(graph)
        return graph.forward

    compiled = torch.compile(blocked_conv.blocked_conv, backend=recording, fullgraph=True, dynamic=True)
    with torch.no_grad():
        out = compiled(x, weight, bias, 4)
    assert "pixels_from_blocks" in str(graphs[0].graph)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=4), rtol=1e-4, atol=1e-4)


def test_the_block_weight_places_the_kernel_at_each_pixel_of_the_block() -> None:
    weight = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    blocked = blocked_conv.block_weight(weight, 2)  # (2 * 4, 1, 4, 4)
    pixel_major = blocked_conv.block_weight(weight, 2, pixel_major=True)  # channel (p, q, c)
    assert blocked.shape == (8, 1, 4, 4)
    for c in range(2):
        for p in range(2):
            for q in range(2):
                kernel = blocked[c * 4 + p * 2 + q, 0]
                assert (
                    torch.equal(kernel[p : p + 3, q : q + 3], weight[c, 0])
                    and kernel.abs().sum() == weight[c].abs().sum()
                )
                assert torch.equal(pixel_major[(p * 2 + q) * 2 + c, 0], kernel)


def test_its_gradients_equal_the_plain_convolution_s_in_float64() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 19, 22, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, 9, 9, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 19, 22, dtype=torch.float64)
    grads = []
    for conv in (lambda: F.conv2d(x, weight, bias, padding=4), lambda: blocked_conv.blocked_conv(x, weight, bias, 4)):
        grads.append(torch.autograd.grad((conv() * upstream).sum(), (x, weight, bias)))
    for blocked, plain in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(blocked, plain, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("grad", [False, True])
def test_the_network_s_output_layer_runs_by_blocks_with_the_fast_layers(monkeypatch, grad) -> None:
    calls = []
    original = blocked_conv.blocked_conv
    monkeypatch.setattr(blocked_conv, "blocked_conv", lambda *a: calls.append(a[1].shape) or original(*a))
    torch.manual_seed(0)
    network = TransformerNet().train()
    x = torch.rand(1, 3, 36, 52)
    expected = network(x)  # the plain layers
    assert not calls
    with torch.set_grad_enabled(grad):
        out = network.use_fast_ops()(x)
    assert calls == [torch.Size([3, 32, 9, 9])]  # the last layer only: every other one has 32+ outputs
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_only_output_layers_with_a_multiple_of_32_inputs_are_blocked() -> None:
    # oneDNN's AMX bf16 kernels get the blocked convolution wrong with 8 to 24 input channels
    assert blocked_conv.applies(32, 3, 1) and blocked_conv.applies(64, 3, 1)
    assert not any(blocked_conv.applies(c, 3, 1) for c in (8, 16, 24, 48))
    assert not blocked_conv.applies(32, 16, 1) and not blocked_conv.applies(32, 3, 2)


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75])
def test_narrower_networks_give_their_plain_output_in_bf16(width) -> None:
    torch.manual_seed(0)
    network = TransformerNet(width=width).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        expected = network(x)
        fast = copy.deepcopy(network).to(torch.bfloat16, memory_format=torch.channels_last).use_fast_ops()
        out = fast(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    snr_db = 10 * torch.log10(expected.var() / (out - expected).pow(2).mean())
    assert snr_db > 15, f"bf16 fast layers at width {width}: {snr_db:.1f} dB from the plain network"
