"""The low-memory forms of eager inference compute exactly what the plain fast layers compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylenet.networks import blocked_conv, fast_ops, low_memory_ops
from stylenet.networks.transformer import TransformerNet

CASES = [
    (torch.float32, torch.contiguous_format),
    (torch.float32, torch.channels_last),
    (torch.bfloat16, torch.channels_last),
]


def _tensor(*shape: int, dtype=torch.float32, layout=torch.contiguous_format) -> torch.Tensor:
    return torch.randn(*shape).to(dtype).contiguous(memory_format=layout)


@pytest.mark.parametrize(("dtype", "layout"), CASES)
def test_instance_norm_in_place_equals_the_batch_norm_kernel_bit_for_bit(dtype, layout) -> None:
    torch.manual_seed(0)
    x = _tensor(2, 16, 23, 37, dtype=dtype, layout=layout) * 3 + 1
    weight, bias = torch.rand(16).to(dtype), torch.rand(16).to(dtype)
    expected = fast_ops.instance_norm(x, weight, bias, 1e-5)
    storage = x.data_ptr()
    with torch.inference_mode():
        out = low_memory_ops.instance_norm_(x, weight, bias, 1e-5)
    assert out.data_ptr() == storage and out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("dtype", "layout"), CASES)
def test_instance_norm_in_place_of_a_cropped_view_writes_the_view(dtype, layout) -> None:
    # The cropped output of a transposed convolution (model.upsample=transposed at an odd size).
    torch.manual_seed(0)
    whole = _tensor(1, 8, 24, 30, dtype=dtype, layout=layout) * 2 + 1
    view = whole[..., :23, :29]
    weight, bias = torch.rand(8).to(dtype), torch.rand(8).to(dtype)
    expected = F.instance_norm(view.float(), weight=weight.float(), bias=bias.float(), eps=1e-5)
    with torch.inference_mode():
        out = low_memory_ops.instance_norm_(view, weight, bias, 1e-5)
    assert out.data_ptr() == whole.data_ptr()
    tolerance = 0.02 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(whole[..., :23, :29].float(), expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize(("dtype", "layout"), CASES)
@pytest.mark.parametrize(
    ("kernel", "stride", "pad", "mode", "size"),
    [
        (kernel, stride, pad, mode, size)
        for kernel, stride, pad, mode in [
            (9, 1, 4, "reflect"),
            (3, 2, 1, "reflect"),
            (3, 1, 1, "reflect"),
            (2, 1, 1, "replicate"),
        ]
        for size in [(16, 16), (17, 23), (6, 40), (3, 3)]
        if mode == "replicate" or min(size) > pad  # reflection needs more rows than the padding
    ],
)
def test_padded_conv_equals_padding_then_convolving(dtype, layout, kernel, stride, pad, mode, size) -> None:
    torch.manual_seed(0)
    x = _tensor(2, 5, *size, dtype=dtype, layout=layout)
    weight, bias = torch.randn(7, 5, kernel, kernel).to(dtype), torch.randn(7).to(dtype)
    expected = F.conv2d(F.pad(x, (pad,) * 4, mode=mode), weight, bias, stride)
    with torch.inference_mode():
        out = low_memory_ops.padded_conv(x, weight, bias, stride, pad, mode)
    tolerance = {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(out, expected, **tolerance)


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (6, 40)])
def test_no_strided_border_strip_is_a_single_column_or_row(monkeypatch, size) -> None:
    # oneDNN's AMX kernels for bf16 return garbage for a strided convolution one output column
    # wide; this checks the workaround on every CPU, the test above shows the bug only on AMX.
    shapes = []
    conv2d = F.conv2d

    def recording(x, weight, bias=None, stride=1, *args, **kwargs):
        out = conv2d(x, weight, bias, stride, *args, **kwargs)
        shapes.append((stride, tuple(out.shape[-2:])))
        return out

    monkeypatch.setattr(low_memory_ops.F, "conv2d", recording)
    x, weight = torch.randn(1, 5, *size), torch.randn(7, 5, 3, 3)
    with torch.inference_mode():
        out = low_memory_ops.padded_conv(x, weight, None, 2, 1, "reflect")
    monkeypatch.undo()
    torch.testing.assert_close(out, F.conv2d(F.pad(x, (1,) * 4, mode="reflect"), weight, None, 2))
    strips = shapes[1:]  # the first call is the whole image's; odd sizes have far borders too
    assert len(strips) == (2 if size[0] % 2 == 0 else 3) + (size[1] % 2)
    assert all(min(shape) >= 2 for stride, shape in strips if stride > 1)


@pytest.mark.parametrize(("dtype", "layout"), CASES)
@pytest.mark.parametrize("strip_bytes", [1, 5000, 1 << 30])  # one row a strip, a few rows, the whole image
@pytest.mark.parametrize("transposed", [True, False])  # CPUs' form, and the phases GPUs keep
def test_upsample_by_strips_equals_the_whole_image_form_bit_for_bit(
    monkeypatch, dtype, layout, strip_bytes, transposed
) -> None:
    monkeypatch.setattr(low_memory_ops, "STRIP_BYTES", strip_bytes)
    for module in (fast_ops, low_memory_ops):
        monkeypatch.setattr(module, "by_transposed_convolution", lambda x: transposed)
    torch.manual_seed(0)
    x = _tensor(2, 6, 9, 14, dtype=dtype, layout=layout)
    weight, bias = torch.randn(4, 6, 3, 3).to(dtype), torch.randn(4).to(dtype)
    with torch.inference_mode():
        expected = fast_ops.upsample_conv(x, (18, 28), weight, bias)
        out = low_memory_ops.upsample_conv_by_strips(x, weight, bias)
    assert out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("dtype", "layout"), CASES)
@pytest.mark.parametrize(
    ("size", "doubles"), [((32, 48), True), ((35, 29), False)]
)  # whether the decoder's steps are x2 exactly
def test_the_network_runs_them_in_eager_inference_with_the_same_output(
    monkeypatch, dtype, layout, size, doubles
) -> None:
    monkeypatch.setattr(low_memory_ops, "LARGE_BYTES", 0)  # the border form at this small size too
    monkeypatch.setattr(blocked_conv, "FEW_CHANNELS", 0)  # the output layer as plainly (tests/test_blocked_conv.py)
    for module in (fast_ops, low_memory_ops):  # one upsampling form with gradients and without
        monkeypatch.setattr(module, "by_transposed_convolution", lambda x: True)
    ran: set[str] = set()
    for name in ("instance_norm_", "padded_conv", "upsample_conv_by_strips", "residual_sum"):
        form = getattr(low_memory_ops, name)
        monkeypatch.setattr(
            low_memory_ops, name, lambda *a, _form=form, _name=name, **k: ran.add(_name) or _form(*a, **k)
        )
    torch.manual_seed(0)
    network = TransformerNet().train().to(dtype, memory_format=layout).use_fast_ops().requires_grad_(False)
    x = _tensor(2, 3, *size, dtype=dtype, layout=layout).sigmoid()
    given = x.clone()
    with torch.enable_grad():  # the plain fast layers (the forms are for inference only)
        expected = network(x)
    assert ran <= {"residual_sum"}  # called, and out of place with gradients (tested below)
    ran.clear()
    with torch.inference_mode():
        out = network(x)
    forms = {"instance_norm_", "padded_conv", "residual_sum"}
    assert ran == forms | ({"upsample_conv_by_strips"} if doubles else set())
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert torch.equal(x, given)  # in place only on the network's own activations


def test_a_residual_sum_lands_in_the_block_output_only_without_gradients() -> None:
    x, y = torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5)
    expected, given = x + y, x.clone()
    with torch.inference_mode():
        inference_y = y.clone()
        out = low_memory_ops.residual_sum(x, inference_y)
    assert out.data_ptr() == inference_y.data_ptr() and torch.equal(out, expected) and torch.equal(x, given)
    trained_y = y.clone().requires_grad_()
    out = low_memory_ops.residual_sum(x, trained_y)
    assert out.data_ptr() != trained_y.data_ptr() and torch.equal(out, expected)


def test_training_and_compiled_code_keep_the_plain_forms() -> None:
    x = torch.rand(1, 4, 8, 8)
    assert not low_memory_ops.applies(x)  # gradients enabled
    with torch.no_grad():
        assert low_memory_ops.applies(x) and not low_memory_ops.is_large(x)
        assert low_memory_ops.is_large(torch.empty(1, 32, 256, 256))  # 8 MiB in fp32
