"""The fast layers compute what the plain layers compute, forward and backward, in any layout."""

import platform
import subprocess
import sys
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from skip_policy import NOT_GLIBC
from torch.utils.flop_counter import FlopCounterMode

from stylenet.losses.vgg import VGG19Features
from stylenet.networks import fast_ops
from stylenet.networks.transformer import ConvLayer, TransformerNet

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def _plain_upsample_conv(x, size, weight, bias):
    return F.conv2d(F.pad(F.interpolate(x, size=size, mode="nearest"), (1, 1, 1, 1), mode="reflect"), weight, bias)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("small,size", [((5, 7), (10, 14)), ((5, 7), (9, 13)), ((6, 6), (11, 12)), ((2, 3), (3, 5))])
def test_upsample_conv_equals_upsampling_padding_and_convolution(layout, small, size):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, *small, dtype=torch.float64, generator=generator).contiguous(memory_format=layout)
    weight = torch.randn(4, 8, 3, 3, dtype=torch.float64, generator=generator)
    bias = torch.randn(4, dtype=torch.float64, generator=generator)
    x.requires_grad_(True)
    weight.requires_grad_(True)

    fast = fast_ops.upsample_conv(x, size, weight, bias)
    plain = _plain_upsample_conv(x, size, weight, bias)
    assert fast.shape == plain.shape == (2, 4, *size)
    assert fast.is_contiguous(memory_format=layout)
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(plain)
    fast_grads = torch.autograd.grad(fast, (x, weight), grad)
    plain_grads = torch.autograd.grad(plain, (x, weight), grad)
    for a, b in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# (h, w) -> (H, W): even and odd output heights and widths.
UPSAMPLINGS = [((5, 7), (10, 14)), ((5, 7), (9, 13)), ((6, 6), (11, 12)), ((4, 5), (8, 9))]


def _upsampling_layer(generator: torch.Generator) -> ConvLayer:
    """The decoder's layer (reflection padding and a 3x3 convolution), with random weights."""
    layer = ConvLayer(8, 6, 3)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return layer


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("small,size", UPSAMPLINGS)
def test_upsample_conv_matches_the_networks_plain_layer_in_fp32_and_bf16(layout, small, size):
    generator = torch.Generator().manual_seed(3)
    layer = _upsampling_layer(generator)
    x = torch.randn(2, 8, *small, generator=generator).contiguous(memory_format=layout)
    x.requires_grad_(True)

    plain = layer(F.interpolate(x, size=size, mode="nearest"))
    fast = fast_ops.upsample_conv(x, size, layer[1].weight, layer[1].bias)
    assert fast.shape == plain.shape and fast.is_contiguous(memory_format=layout)
    assert _relative_error(fast, plain) <= 1e-5
    grad = torch.randn(plain.shape, generator=generator)
    inputs = (x, layer[1].weight, layer[1].bias)
    for a, b in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(plain, inputs, grad), strict=True):
        assert _relative_error(a, b) <= 1e-5

    with torch.no_grad():  # bf16: the network's inference precision; rounding differs, not the result
        layer_bf16 = layer.to(torch.bfloat16)
        fast_bf16 = fast_ops.upsample_conv(x.bfloat16(), size, layer_bf16[1].weight, layer_bf16[1].bias)
    assert fast_bf16.dtype == torch.bfloat16 and fast_bf16.is_contiguous(memory_format=layout)
    assert _relative_error(fast_bf16, plain) <= 2e-2


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("small,size", UPSAMPLINGS)
def test_inference_on_cpus_upsamples_by_one_transposed_convolution_with_the_same_values(layout, small, size):
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(2, 8, *small, dtype=torch.float64, generator=generator).contiguous(memory_format=layout)
    weight = torch.randn(6, 8, 3, 3, dtype=torch.float64, generator=generator)
    bias = torch.randn(6, dtype=torch.float64, generator=generator)
    assert fast_ops.transposed_weight(weight).shape == (8, 6, 4, 4)
    assert not fast_ops.by_transposed_convolution(x)  # with gradients: the four phases
    phases = fast_ops.upsample_conv(x, size, weight, bias)
    with torch.no_grad():
        assert fast_ops.by_transposed_convolution(x)
        transposed = fast_ops.upsample_conv(x, size, weight, bias)
    plain = _plain_upsample_conv(x, size, weight, bias)
    assert transposed.shape == plain.shape and transposed.is_contiguous(memory_format=layout)
    torch.testing.assert_close(transposed, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(phases, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rows,cols", [(6, 8), (5, 4)])
def test_compiled_interleave_equals_the_eager_one(layout, rows, cols):
    # The form compiled code takes (no strides read); run eagerly here, values and gradients.
    phases = torch.randn(2, 4 * 3, rows, cols, dtype=torch.float64).contiguous(memory_format=layout)
    phases.requires_grad_(True)
    eager = fast_ops._interleave(fast_ops.phase_views(phases), layout == torch.channels_last)
    compiled = fast_ops.interleave_by_cropping(phases)
    assert eager.shape == (2, 3, 2 * rows - 2, 2 * cols - 2) and eager.is_contiguous(memory_format=layout)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)
    grad = torch.randn_like(eager)
    eager_grad, compiled_grad = (torch.autograd.grad(y, phases, grad)[0] for y in (eager, compiled))
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=0, atol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_upsample_conv_does_the_multiply_adds_of_2x2_kernels(layout):
    # Nearest x2 upsampling repeats rows and columns, so each output pixel needs 2x2 of the 3x3 taps:
    # one 2x2 convolution into four phases, each (h + 1) x (w + 1) (one row and column of overlap).
    batch, ci, co, (h, w) = 2, 8, 6, (5, 7)
    x = torch.randn(batch, ci, h, w).contiguous(memory_format=layout)
    weight, bias = torch.randn(co, ci, 3, 3), torch.randn(co)
    assert fast_ops.phase_weight(weight).shape == (4 * co, ci, 2, 2)

    def conv_flops(function) -> int:
        with FlopCounterMode(display=False) as counter:
            function()
        return counter.get_flop_counts()["Global"][torch.ops.aten.convolution]

    fast = conv_flops(lambda: fast_ops.upsample_conv(x, (2 * h, 2 * w), weight, bias))
    plain = conv_flops(lambda: _plain_upsample_conv(x, (2 * h, 2 * w), weight, bias))
    assert plain == 2 * batch * co * ci * 9 * (2 * h) * (2 * w)
    assert fast == 2 * batch * 4 * co * ci * 4 * (h + 1) * (w + 1)
    assert Fraction(fast, plain) == Fraction(4, 9) * Fraction((h + 1) * (w + 1), h * w)


def test_upsample_conv_refuses_sizes_that_are_not_twice_the_input():
    with pytest.raises(ValueError, match="by two"):
        fast_ops.upsample_conv(torch.rand(1, 2, 5, 5), (12, 10), torch.rand(2, 2, 3, 3), None)


@pytest.mark.parametrize("pad", [1, 4])
def test_reflection_pad_equals_the_stock_operator(pad):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    fast, plain = fast_ops.reflection_pad_by_concatenation(x, pad), F.pad(x, (pad,) * 4, mode="reflect")
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)
    grad = torch.randn_like(plain)
    torch.testing.assert_close(torch.autograd.grad(fast, x, grad)[0], torch.autograd.grad(plain, x, grad)[0])


@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 4, 9, 7)])
def test_max_pool_equals_the_stock_operator_away_from_ties(shape):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)  # continuous values: no ties
    fast, plain = fast_ops.max_pool_by_views(x), F.max_pool2d(x, 2)
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)
    grad = torch.randn_like(plain)
    torch.testing.assert_close(torch.autograd.grad(fast, x, grad)[0], torch.autograd.grad(plain, x, grad)[0])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch", [1, 3])
def test_instance_norm_matches_and_differentiates(layout, batch):
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(batch, 5, 6, 7, dtype=torch.float64, generator=generator) * 3 + 1).contiguous(memory_format=layout)
    weight = torch.rand(5, dtype=torch.float64, generator=generator) + 0.5
    bias = torch.randn(5, dtype=torch.float64, generator=generator)
    plain = F.instance_norm(x, weight=weight, bias=bias, eps=1e-5)
    torch.testing.assert_close(fast_ops.instance_norm(x, weight, bias, 1e-5), plain)
    with torch.no_grad():  # inference takes another route to the same kernel
        torch.testing.assert_close(fast_ops.instance_norm(x, weight, bias, 1e-5), plain)
    inputs = tuple(t.detach().requires_grad_(True) for t in (x, weight, bias))
    assert torch.autograd.gradcheck(lambda *a: fast_ops.instance_norm(*a, 1e-5), inputs)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(9, 11), (16, 32), (17, 19)])  # pixels: fewer than, a multiple of, more than 256
def test_instance_norm_from_sums_matches(layout, batch, size):
    # The form compiled inference uses; its partial sums run over rows of 256 pixels plus a remainder.
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(batch, 5, *size, dtype=torch.float64, generator=generator) * 3 + 1
    x = x.contiguous(memory_format=layout)
    weight = torch.rand(5, dtype=torch.float64, generator=generator) + 0.5
    bias = torch.randn(5, dtype=torch.float64, generator=generator)
    sums = fast_ops._instance_norm_from_sums(x, weight, bias, 1e-5)
    torch.testing.assert_close(sums, F.instance_norm(x, weight=weight, bias=bias, eps=1e-5), rtol=1e-12, atol=1e-12)


def test_instance_norm_uses_the_sums_when_compiling_without_gradients(monkeypatch):
    x, weight, bias = torch.randn(1, 3, 5, 5), torch.rand(3) + 0.5, torch.randn(3)
    calls = []
    monkeypatch.setattr(fast_ops, "_instance_norm_from_sums", lambda *args: calls.append(args) or args[0])
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with torch.no_grad():
        fast_ops.instance_norm(x, weight, bias, 1e-5)
    assert len(calls) == 1


def test_instance_norm_operators_pass_torch_library_checks():
    x, weight, bias = torch.randn(2, 3, 5, 5), torch.rand(3) + 0.5, torch.randn(3)
    torch.library.opcheck(torch.ops.stylenet.instance_norm.default, (x, weight, bias, 1e-5))


def test_relu_operators_pass_torch_library_checks():
    x = torch.randn(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.stylenet.relu.default, (x,))
    output = torch.relu(x)
    torch.library.opcheck(torch.ops.stylenet.relu_backward.default, (torch.randn(2, 3, 5, 5), output))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_operator_matches_and_differentiates(layout):
    x = torch.randn(2, 4, 6, 7, dtype=torch.float64).contiguous(memory_format=layout)
    x = torch.where(x.abs() < 1e-3, 0.5, x).requires_grad_(True)  # no input near the kink
    out = fast_ops._relu(x)
    torch.testing.assert_close(out, torch.relu(x), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=layout)
    assert torch.autograd.gradcheck(fast_ops._relu, (x,))


def test_relu_takes_the_operator_only_in_compiled_training_on_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(fast_ops, "_relu", lambda x: calls.append(x) or torch.relu(x))
    x = torch.randn(1, 2, 3, 3)
    fast_ops.relu(x)  # eager: the plain ReLU
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with torch.no_grad():  # compiled inference: the plain ReLU, which Inductor fuses
        fast_ops.relu(x)
    assert calls == []
    fast_ops.relu(x)
    assert len(calls) == 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_network_gives_the_same_output_and_gradients_with_fast_ops(layout):
    torch.manual_seed(0)
    network = TransformerNet().double().to(memory_format=layout)
    images = torch.rand(2, 3, 37, 42, dtype=torch.float64).contiguous(memory_format=layout)  # odd sizes

    def output_and_grads(fast: bool):
        network.use_fast_ops(fast).zero_grad()
        out = network(images)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in network.parameters()]

    plain_out, plain_grads = output_and_grads(False)
    fast_out, fast_grads = output_and_grads(True)
    torch.testing.assert_close(fast_out, plain_out, rtol=1e-9, atol=1e-9)
    for fast, plain in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-7, atol=1e-9)


def test_vgg_features_are_the_same_with_fast_pooling():
    vgg = VGG19Features(["relu1_1", "relu3_1", "relu5_1"], weights="random").double()
    images = torch.rand(2, 3, 50, 46, dtype=torch.float64)
    plain = vgg(images, ["relu1_1", "relu3_1", "relu5_1"])
    fast = vgg.use_fast_ops(True)(images, ["relu1_1", "relu3_1", "relu5_1"])
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=0, atol=0)


def test_export_uses_the_plain_layers_even_from_a_fast_network():
    from stylenet.inference.export import _exported_program

    network = TransformerNet().use_fast_ops(True)
    graph = str(_exported_program(network).graph)
    assert "stylenet" not in graph
    assert all(m.fast for m in network.modules() if hasattr(m, "fast"))  # the caller's network is untouched


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason=NOT_GLIBC)
def test_keep_freed_memory_is_accepted_by_glibc_and_can_be_undone():
    # In a child process: the setting changes the whole process's allocator for good.
    code = (
        "from stylenet.hardware import keep_freed_memory as keep\nassert keep() is True\nassert keep(False) is True\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
