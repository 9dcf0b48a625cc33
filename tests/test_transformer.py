import pytest
import torch

from stylenet.networks.transformer import TransformerConfig, TransformerNet


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (8, 9), (61, 20)])
@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_output_has_input_size(size: tuple[int, int], upsample: str) -> None:
    net = TransformerNet(width=0.25, num_residual_blocks=1, upsample=upsample)
    x = torch.rand(2, 3, *size)
    assert net(x).shape == x.shape


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_norm_options_build_and_run(norm: str) -> None:
    net = TransformerNet(width=0.25, num_residual_blocks=2, norm=norm)
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_eval_output_is_an_image_and_training_output_is_free() -> None:
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, num_residual_blocks=1)
    x = torch.rand(1, 3, 24, 24)
    free = net.train()(x)
    clamped = net.eval()(x)
    assert clamped.min() >= 0 and clamped.max() <= 1
    assert torch.allclose(clamped, free.clamp(0, 1), atol=1e-6)


def test_width_scales_channels_and_default_is_johnson() -> None:
    johnson = TransformerNet()
    assert johnson.encoder[0][0][1].out_channels == 32
    assert johnson.encoder[2][0][1].out_channels == 128
    assert len(johnson.residuals) == 5
    half = TransformerNet(width=0.5)
    assert half.encoder[2][0][1].out_channels == 64
    params = sum(p.numel() for p in johnson.parameters())
    assert 1.6e6 < params < 1.8e6  # Johnson's network has ~1.68M parameters


def test_config_rebuilds_the_same_network() -> None:
    net = TransformerNet(width=0.5, num_residual_blocks=3, upsample="transposed", norm="batch")
    rebuilt = TransformerNet(**net.config.to_dict())
    rebuilt.load_state_dict(net.state_dict())
    assert rebuilt.config == TransformerConfig(0.5, 3, "transposed", "batch")


def test_input_is_not_modified() -> None:
    x = torch.rand(1, 3, 21, 22)
    before = x.clone()
    TransformerNet(width=0.25, num_residual_blocks=1)(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("bad", [{"upsample": "bicubic"}, {"norm": "layer"}, {"width": 0}])
def test_bad_options_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        TransformerNet(**bad)
