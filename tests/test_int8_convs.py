"""int8 convolutions (`precision="int8"`): each layer, the calibration, and the compiled network against fp32.

The network gate uses the quickstart model (trained weights, as in test_fast_paths.py) on
scikit-image's photos, none of which the int8 ranges are calibrated on.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from skimage import data
from torch import nn

from stylenet import load_model
from stylenet.checkpoint import load_inference_checkpoint
from stylenet.errors import ConfigError
from stylenet.inference.fast import FastRunner
from stylenet.inference.memory import activation_bytes_per_pixel
from stylenet.networks import int8_convs
from stylenet.networks.transformer import TransformerNet

pytestmark = pytest.mark.skipif(int8_convs.available() is not None, reason=f"{int8_convs.available()}")

QUICKSTART = REPO / "tests" / "data" / "quickstart_starry.pt"
FLOOR_DB = 35.0  # as the bf16 fast paths' floor against fp32


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / max((a.float() - b.float()).pow(2).mean().item(), 1e-12))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("low", [0.0, -1.5])
def test_an_int8_convolution_matches_the_fp32_one_within_its_quantisation(stride: int, low: float) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 48, 3, stride)
    x = torch.rand(1, 32, 21, 17) * (3.0 - low) + low  # exactly the calibrated range
    layer = int8_convs.Int8Conv(conv, low, 3.0)
    got = layer(x.bfloat16().contiguous(memory_format=torch.channels_last))
    want = conv(x)
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    relative = ((got.float() - want).pow(2).mean() / want.pow(2).mean()).item()
    assert relative < 1e-3, relative  # 8-bit steps: about 40 dB
    # Values beyond the range saturate rather than wrap around.
    assert layer.quantize(torch.tensor([low - 10.0, 3.0 + 10.0])).tolist() == [0, 255]


def test_calibration_records_each_quantised_input_and_runs_every_style() -> None:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=2, num_styles=2).eval()
    photo = torch.rand(1, 3, 40, 48)
    ranges = int8_convs.input_ranges(network, [photo], tail=0.0)
    assert len(ranges) == 1 + 2 * 2  # the first layer, then two per residual block
    assert ranges[0] == (0.0, photo.max().item())  # low: 0 at most
    for low, high in ranges[2::2]:  # the second convolution of each block reads a ReLU's output
        assert low == 0.0 and high > 0.0
    # Each style's rows change the ranges: a network of several is calibrated on all of them.
    with torch.no_grad():
        network.residuals[0].body[0][1].bias[1].fill_(50.0)
    assert int8_convs.input_ranges(network, [photo], tail=0.0)[2][1] > 50.0


def test_calibrated_ranges_leave_out_the_extreme_tails() -> None:
    values = torch.cat([torch.linspace(-1.0, 2.0, 10_000), torch.tensor([-40.0, 90.0])])
    assert int8_convs.tails(values, 0.0) == (-40.0, 90.0)
    low, high = int8_convs.tails(values, 1e-3)  # ten values at either end
    assert -1.0 < low < -0.99 and 1.99 < high < 2.0
    assert int8_convs.tails(torch.rand(100) + 1.0, 0.0)[0] == 0.0  # zero is always inside the range


def test_int8_layers_run_only_in_the_compiled_graph_and_eager_calls_run_bf16() -> None:
    network, _ = load_inference_checkpoint(QUICKSTART)
    runner = FastRunner(network.eval(), torch.device("cpu"), "int8", compile=True)
    assert len([m for m in runner.module.modules() if isinstance(m, int8_convs.Int8Conv)]) == 11
    bf16 = FastRunner(network, torch.device("cpu"), "bf16")
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        assert torch.equal(runner.uncompiled()(x), bf16(x))


@pytest.mark.slow
def test_the_compiled_int8_network_agrees_with_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    network, _ = load_inference_checkpoint(QUICKSTART)
    network.eval()
    traced = []
    quantize = int8_convs.Int8Conv.quantize
    monkeypatch.setattr(int8_convs.Int8Conv, "quantize", lambda self, x: traced.append(self) or quantize(self, x))
    runner = FastRunner(network, torch.device("cpu"), "int8", compile=True)
    bf16 = FastRunner(network, torch.device("cpu"), "bf16", compile=True)
    for photo in (data.astronaut, data.chelsea):
        image = torch.from_numpy(photo()).permute(2, 0, 1).unsqueeze(0).float() / 255
        x = F.interpolate(image, size=(96, 128), mode="bilinear", antialias=True).clamp(0, 1)
        with torch.inference_mode():
            reference, got, compiled_bf16 = network(x), runner(x), bf16(x)
        assert runner.compiled, "the int8 runner fell back to eager"
        assert psnr(got, reference) >= FLOOR_DB, psnr(got, reference)
        assert not torch.equal(got, compiled_bf16)  # it is not the bf16 graph
        assert reference.std() > 0.05
    assert len(set(traced)) == 11  # every int8 layer is in the traced graph


def test_int8_is_refused_in_one_line_where_it_cannot_run(tmp_path) -> None:
    with pytest.raises(ConfigError, match="compile=True"):
        load_model(QUICKSTART, precision="int8")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not read")
    with pytest.raises(ConfigError, match="exported"):
        load_model(onnx, precision="int8", compile=True)
    with pytest.raises(ValueError, match="compile=True"):
        FastRunner(TransformerNet(), torch.device("cpu"), "int8")


def test_int8_plans_memory_as_bf16() -> None:
    config = TransformerNet().config.to_dict()
    bf16 = activation_bytes_per_pixel(config, "bf16", fast=True)
    assert activation_bytes_per_pixel(config, "int8", fast=True) == bf16
