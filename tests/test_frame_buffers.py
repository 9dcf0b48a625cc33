"""Eager inference keeps its largest activations for the next frame, and computes exactly the same."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import torch
import torch.nn.functional as F

from stylenet import hardware
from stylenet.networks import frame_buffers, low_memory_ops
from stylenet.networks.frame_buffers import FrameBuffers, carve
from stylenet.networks.transformer import TransformerNet

CASES = [
    (torch.float32, torch.contiguous_format),
    (torch.float32, torch.channels_last),
    (torch.bfloat16, torch.channels_last),
]


def _network(dtype=torch.float32, layout=torch.contiguous_format, **config) -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(**config).eval().to(dtype, memory_format=layout).use_fast_ops().requires_grad_(False)


def _images(*shape: int, dtype=torch.float32, layout=torch.contiguous_format, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=generator).to(dtype).contiguous(memory_format=layout)


def _without_buffers(network: TransformerNet) -> TransformerNet:
    plain = copy.deepcopy(network)
    plain.frame_buffers = None
    return plain


@pytest.mark.parametrize(("dtype", "layout"), CASES)
@pytest.mark.parametrize(("stride", "padding"), [(1, 4), (2, 1), (1, 0)])
def test_conv2d_into_writes_the_plain_convolution_into_the_buffer_bit_for_bit(dtype, layout, stride, padding) -> None:
    x = _images(2, 5, 19, 26, dtype=dtype, layout=layout)
    torch.manual_seed(0)
    weight = torch.randn(7, 5, 2 * padding + 1, 2 * padding + 1).to(dtype).contiguous(memory_format=layout)
    bias = torch.randn(7).to(dtype)
    expected = F.conv2d(x, weight, bias, stride, padding)
    out = torch.full_like(expected, float("nan"))  # whatever the last frame left there is overwritten
    with torch.inference_mode():
        result = low_memory_ops.conv2d_into(out, x, weight, bias, stride, padding)
    assert result.data_ptr() == out.data_ptr()
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("dtype", "layout"), CASES)
@pytest.mark.parametrize("large_bytes", [0, low_memory_ops.LARGE_BYTES])
def test_the_network_writes_into_kept_buffers_with_the_same_output(monkeypatch, dtype, layout, large_bytes) -> None:
    monkeypatch.setattr(frame_buffers, "KEEP_BYTES", 0)  # kept at these small sizes too
    monkeypatch.setattr(low_memory_ops, "LARGE_BYTES", large_bytes)  # 0: the border form too
    network = _network(dtype, layout)
    plain = _without_buffers(network)
    first, odd = _images(2, 3, 32, 48, dtype=dtype, layout=layout), _images(1, 3, 35, 29, dtype=dtype, layout=layout)
    given = first.clone()

    def kept() -> dict[str, tuple[int, tuple[int, ...]]]:
        return {name: (buffer.data_ptr(), tuple(buffer.shape)) for name, buffer in network.frame_buffers._kept.items()}

    with torch.inference_mode():
        outs = [network(first)]
        assert kept() == {}  # a single frame allocates as it always did
        outs.append(network(first))
        second = kept()
        outs.append(network(first))
        assert kept() == second  # the same memory again
        others = [network(odd)]
        assert kept() == {}  # another size: the old buffers are freed
        others += [network(odd), network(odd)]
        expected, expected_other = plain(first), plain(odd)
    assert {name: shape for name, (_, shape) in second.items()} == {"full": (2, 32, 32, 48), "half": (2, 64, 16, 24)}
    assert {name: shape for name, (_, shape) in kept().items()} == {"full": (1, 32, 35, 29), "half": (1, 64, 18, 15)}
    # Bit for bit in bf16; in fp32 PyTorch's own convolution picks another kernel for some small
    # single-image shapes (64 and 128 channels here), and the two differ by rounding.
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 0, "atol": 0}
    for out in outs:
        torch.testing.assert_close(out, expected, **tolerance)
        assert out.data_ptr() not in {pointer for pointer, _ in second.values()}  # the result is the caller's own
    for out in others:
        torch.testing.assert_close(out, expected_other, **tolerance)
    assert torch.equal(first, given)


def test_nothing_is_kept_while_the_process_reuses_freed_memory(monkeypatch) -> None:
    monkeypatch.setattr(frame_buffers, "KEEP_BYTES", 0)
    network = _network()
    x = _images(1, 3, 16, 16)
    with torch.inference_mode():
        network(x), network(x)
        assert set(network.frame_buffers._kept) == {"full", "half"}
        monkeypatch.setattr(hardware, "_keeping_freed_memory", True)
        out = network(x)
        assert network.frame_buffers._kept == {}  # zeroing them would only cost time there
        torch.testing.assert_close(out, _without_buffers(network)(x), rtol=0, atol=0)


def test_small_frames_gradients_and_the_plain_layers_keep_nothing(monkeypatch) -> None:
    network = _network()
    x = _images(1, 3, 32, 32)
    with torch.inference_mode():
        network(x), network(x)  # a 32-channel activation of 128 KiB, under KEEP_BYTES
    assert network.frame_buffers._kept == {}
    monkeypatch.setattr(frame_buffers, "KEEP_BYTES", 0)
    network(x), network(x)  # gradients on: the plain fast layers
    assert network.frame_buffers._kept == {}
    assert network.use_fast_ops(False).frame_buffers is None
    with torch.inference_mode():
        network(x)
        network.use_fast_ops()
        network(x), network(x)
    assert set(network.frame_buffers._kept) == {"full", "half"}
    network.frame_buffers.clear()
    assert network.frame_buffers._kept == {}


def test_concurrent_frames_do_not_share_buffers(monkeypatch) -> None:
    monkeypatch.setattr(frame_buffers, "KEEP_BYTES", 0)
    network = _network()
    images = [_images(1, 3, 24, 40, seed=seed) for seed in range(4)]
    with torch.inference_mode():
        expected = [_without_buffers(network)(x) for x in images]
    buffers = network.frame_buffers
    with buffers.lease() as held, buffers.lease() as second:
        assert held is buffers and second is None  # a frame that finds them lent allocates its own
    results: dict[int, list[torch.Tensor]] = {}

    def stylize(index: int) -> None:
        with torch.inference_mode():
            results[index] = [network(images[index]) for _ in range(6)]

    threads = [threading.Thread(target=stylize, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, outs in results.items():
        for out in outs:
            torch.testing.assert_close(out, expected[index], rtol=0, atol=0)
    assert len(results) == 4


def test_copies_start_with_their_own_empty_buffers(monkeypatch) -> None:
    monkeypatch.setattr(frame_buffers, "KEEP_BYTES", 0)
    network = _network()
    with torch.inference_mode():
        network(_images(1, 3, 16, 16)), network(_images(1, 3, 16, 16))
    for copied in (copy.deepcopy(network).frame_buffers, pickle.loads(pickle.dumps(network.frame_buffers))):
        assert isinstance(copied, FrameBuffers) and copied is not network.frame_buffers and copied._kept == {}
        with copied.lease() as held:
            assert held is copied
    assert set(network.frame_buffers._kept) == {"full", "half"}


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_carved_slots_lie_end_to_end_in_the_buffer_in_its_layout(layout) -> None:
    buffer = torch.zeros(1, 8, 6, 10).contiguous(memory_format=layout)  # 480 elements
    slots = carve(buffer, 3, (1, 16, 3, 3))  # 3 x 144
    start = buffer.data_ptr()
    assert [slot.data_ptr() - start for slot in slots] == [0, 144 * 4, 288 * 4]
    for value, slot in enumerate(slots, start=1):
        assert slot.shape == (1, 16, 3, 3) and slot.is_contiguous(memory_format=layout)
        slot.fill_(value)
    assert buffer.sum().item() == 144 * (1 + 2 + 3)  # each slot in its own part of the buffer
    assert carve(buffer, 4, (1, 16, 3, 3)) is None  # 576 elements do not fit


def test_every_large_activation_but_the_last_lands_in_the_two_kept_buffers(monkeypatch) -> None:
    monkeypatch.setattr(frame_buffers, "KEEP_BYTES", 0)
    network = _network(torch.bfloat16, torch.channels_last)
    x = _images(1, 3, 32, 48, dtype=torch.bfloat16, layout=torch.channels_last)
    written: list[int] = []
    conv2d_into, by_strips = low_memory_ops.conv2d_into, low_memory_ops.upsample_conv_by_strips

    def recording(form):
        def run(*args, **kwargs):
            out = form(*args, **kwargs)
            written.append(out.data_ptr())
            return out

        return run

    monkeypatch.setattr(low_memory_ops, "conv2d_into", recording(conv2d_into))
    monkeypatch.setattr(low_memory_ops, "upsample_conv_by_strips", recording(by_strips))
    with torch.inference_mode():
        network(x), network(x)
        written.clear()
        network(x)
    full, half = network.frame_buffers._kept["full"], network.frame_buffers._kept["half"]
    full_range = range(full.data_ptr(), full.data_ptr() + full.numel() * full.element_size())
    # encoder 3, residual blocks 2 x 5, upsampling 2: all in kept memory, the quarter-size ones in the full-size buffer
    assert len(written) == 15
    assert all(pointer in full_range or pointer == half.data_ptr() for pointer in written)
    assert len(set(written[2:13])) == 3  # the encoder's last output and the blocks' turn through three slots
