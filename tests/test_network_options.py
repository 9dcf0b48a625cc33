"""The network options tried for steadier video: `model.downsample=blur` (a low-pass filter before
each stride-2 convolution of the encoder) and `model.upsample=bilinear` (the decoder's upsampling)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenet import load_model
from stylenet.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from stylenet.errors import ConfigError
from stylenet.inference.export import export
from stylenet.networks import antialias, blocked_conv, low_memory_ops
from stylenet.networks.transformer import ConvLayer, TransformerNet
from stylenet.validation import check_network_config

OPTIONS = [{"downsample": "blur"}, {"upsample": "bilinear"}]


def _checkerboard(height: int, width: int) -> torch.Tensor:
    """The finest pattern a grid of pixels holds: +1 and -1 alternating, (1, 1, H, W)."""
    rows, columns = torch.arange(height)[:, None], torch.arange(width)[None, :]
    return (1 - 2 * ((rows + columns) % 2)).float()[None, None]


def test_blur_keeps_flat_areas_and_removes_the_finest_pattern() -> None:
    flat = torch.full((2, 3, 9, 12), 0.7)
    torch.testing.assert_close(antialias.blur(flat), flat)
    # The binomial filter is zero at the sampling grid's Nyquist frequency, borders included
    # (reflection continues the alternation).
    torch.testing.assert_close(antialias.blur(_checkerboard(9, 12)), torch.zeros(1, 1, 9, 12), rtol=0, atol=1e-7)


def test_blur_keeps_dtype_and_channels_last_layout_and_matches_fp32() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 8, 15, 22)
    fast = x.to(torch.bfloat16, memory_format=torch.channels_last)
    out = antialias.blur(fast, fast=True)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.float(), antialias.blur(x), rtol=0, atol=2e-2)


def test_a_one_pixel_move_of_fine_detail_no_longer_flips_the_samples() -> None:
    """What the filter is for: a stride-2 layer that passes its input through samples the checkerboard
    as all +1, and the same pattern moved by one pixel as all -1; with the filter both sample as 0."""
    for blur, expected_change in ((False, 2.0), (True, 0.0)):
        layer = ConvLayer(1, 1, 3, stride=2, blur=blur)
        with torch.no_grad():
            layer[1].weight.zero_()
            layer[1].weight[0, 0, 1, 1] = 1.0  # the centre tap: the layer samples its input
            layer[1].bias.zero_()
            pattern = _checkerboard(16, 17)
            change = (layer(pattern[..., 1:]) - layer(pattern[..., :-1])).abs().max().item()
        assert change == pytest.approx(expected_change, abs=1e-6)


def test_the_option_adds_no_weights_and_rebuilds_from_its_config() -> None:
    blurred, plain = TransformerNet(width=0.25, num_residual_blocks=1, downsample="blur"), TransformerNet(width=0.25)
    assert blurred.state_dict().keys() == TransformerNet(width=0.25, num_residual_blocks=1).state_dict().keys()
    assert [layer[0].blur for layer in blurred.encoder] == [False, True, True]
    assert not any(layer[0].blur for layer in plain.encoder)
    rebuilt = TransformerNet(**blurred.config.to_dict())
    assert rebuilt.config.downsample == "blur" and rebuilt.encoder[1][0].blur


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("size", [(32, 32), (33, 47), (8, 9)])
def test_networks_keep_the_input_size(size: tuple[int, int], options: dict[str, str]) -> None:
    net = TransformerNet(width=0.25, num_residual_blocks=1, **options)
    x = torch.rand(2, 3, *size)
    assert net(x).shape == x.shape


def test_an_unknown_downsampling_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="model.downsample must be strided or blur"):
        TransformerNet(downsample="max")
    with pytest.raises(ConfigError, match="model.downsample must be strided or blur, not 'max'"):
        check_network_config({"downsample": "max"})


def _spread_network(**options: str) -> TransformerNet:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, **options)
    with torch.no_grad():  # an untrained net is nearly constant; spread its weights to make outputs differ
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return network.eval()


@pytest.mark.parametrize("options", OPTIONS)
def test_fast_layers_and_the_low_memory_forms_give_the_plain_output(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, str]
) -> None:
    network = _spread_network(**options)
    x = torch.rand(2, 3, 35, 29)
    with torch.no_grad():
        expected = network(x)
        fast = TransformerNet(**network.config.to_dict()).eval()
        fast.load_state_dict(network.state_dict())
        fast.use_fast_ops()
        torch.testing.assert_close(fast(x), expected, rtol=0, atol=1e-5)
    monkeypatch.setattr(low_memory_ops, "LARGE_BYTES", 0)  # the border forms at this small size too
    monkeypatch.setattr(blocked_conv, "FEW_CHANNELS", 0)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("options", OPTIONS)
def test_model_files_and_exports_keep_the_option(tmp_path: Path, options: dict[str, str]) -> None:
    network = _spread_network(**options)
    metadata = {"style": {"name": "tiny", "image": "tiny.jpg", "size": 64}, "steps": 7}
    pt = save_inference_checkpoint(tmp_path / "tiny.pt", network, metadata)
    loaded, _ = load_inference_checkpoint(pt)
    assert loaded.config == network.config
    images = torch.rand(2, 3, 33, 47)
    eager = load_model(pt, precision="fp32")(images)
    for fmt in ("onnx", "pt2"):
        exported = load_model(export(network, metadata, tmp_path / f"tiny.{fmt}", fmt), precision="fp32")
        assert (exported(images) - eager).abs().max().item() <= 1e-4, fmt


def test_files_written_before_the_option_load_as_strided(tmp_path: Path) -> None:
    network = TransformerNet(width=0.25, num_residual_blocks=1)
    path = save_inference_checkpoint(tmp_path / "old.pt", network, {"style": {"name": "t"}, "steps": 1})
    payload = torch.load(path, weights_only=True)
    del payload["model"]["downsample"]
    torch.save(payload, path)
    loaded, _ = load_inference_checkpoint(path)
    assert loaded.config.downsample == "strided"
