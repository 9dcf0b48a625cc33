import json
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from stylenet.losses import gram as gram_module
from stylenet.losses.gram import gram_matrix
from stylenet.losses.perceptual import PerceptualLoss, build_perceptual_loss, total_variation
from stylenet.losses.vgg import VGG19Features
from stylenet.styles import load_style_image

REPO = Path(__file__).resolve().parents[1]
LOSS_CONFIG = OmegaConf.load(REPO / "configs" / "loss" / "perceptual.yaml")


def test_gram_matrix_values_shape_and_normalisation() -> None:
    features = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    gram = gram_matrix(features)  # (B, C, C)
    assert gram.shape == (2, 3, 3)
    flat = features[1].reshape(3, 4)
    assert torch.allclose(gram[1], flat @ flat.T / 12)
    assert torch.allclose(gram, gram.transpose(1, 2))


def test_gram_matrix_is_float32_under_bf16_autocast() -> None:
    features = torch.rand(1, 4, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram_matrix(features).dtype == torch.float32


def _float64_gram(features: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    flat = features.double().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def test_gram_matrix_reads_channels_last_features_in_place_and_agrees_with_contiguous_ones() -> None:
    torch.manual_seed(0)
    features = torch.rand(2, 8, 5, 7)
    channels_last = features.contiguous(memory_format=torch.channels_last)
    assert gram_module._pixels_by_channels(channels_last).data_ptr() == channels_last.data_ptr()  # a view
    assert gram_module._pixels_by_channels(features).data_ptr() == features.data_ptr()
    assert torch.allclose(gram_matrix(channels_last), gram_matrix(features), rtol=1e-6, atol=1e-7)
    assert torch.allclose(gram_matrix(features).double(), _float64_gram(features), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_of_bf16_features_rounds_only_its_result(memory_format: torch.memory_format) -> None:
    torch.manual_seed(0)
    # ReLU features over many pixels: a sum of 4,096 products that bf16 accumulation would ruin
    features = torch.rand(2, 16, 64, 64).bfloat16().contiguous(memory_format=memory_format).requires_grad_()
    exact = features.detach().double().requires_grad_()
    gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    expected = _float64_gram(exact)
    assert ((gram.double() - expected).norm() / expected.norm()).item() < 4e-3
    weights = torch.randn(2, 16, 16)
    (gram * weights).sum().backward()
    (expected * weights.double()).sum().backward()
    error = (features.grad.double() - exact.grad).norm() / exact.grad.norm()
    assert error.item() < 1e-2


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_gradients_match_finite_differences(memory_format: torch.memory_format) -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=memory_format)
    assert torch.autograd.gradcheck(gram_matrix, (features.requires_grad_(),))
    assert torch.autograd.gradgradcheck(gram_matrix, (features,))


def test_gram_matrix_of_fp16_features_is_computed_in_float32() -> None:
    features = torch.full((1, 2, 4, 4), 300.0).half()  # squares above fp16's largest value, 65504
    gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, torch.full((1, 2, 2), 300.0**2 * 16 / 32))


def test_total_variation_is_zero_for_flat_images_and_grows_with_noise() -> None:
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert total_variation(flat) == 0
    assert total_variation(torch.rand(1, 3, 16, 16)) > 0.1


def _loss(style: torch.Tensor, **weights: float) -> PerceptualLoss:
    settings = {"content_weight": 1.0, "style_weight": 1.0, "tv_weight": 1.0} | weights
    return build_perceptual_loss(style, "random", ["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"], **settings)


def test_losses_vanish_at_their_targets() -> None:
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32)
    content = torch.rand(2, 3, 32, 32)
    loss = _loss(style, tv_weight=0.0)
    assert loss(content, content).content.item() == pytest.approx(0.0, abs=1e-6)
    assert loss(style, style).style.item() == pytest.approx(0.0, abs=1e-6)
    assert loss(content, content).style.item() > 0.01


def test_weights_scale_their_terms() -> None:
    torch.manual_seed(0)
    style, content, output = torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    base = _loss(style)(output, content)
    scaled = _loss(style, content_weight=3.0, style_weight=5.0, tv_weight=7.0)(output, content)
    assert scaled.content.item() == pytest.approx(3 * base.content.item(), rel=1e-5)
    assert scaled.style.item() == pytest.approx(5 * base.style.item(), rel=1e-5)
    assert scaled.tv.item() == pytest.approx(7 * base.tv.item(), rel=1e-5)
    assert base.total.item() == pytest.approx(base.content.item() + base.style.item() + base.tv.item(), rel=1e-6)


def test_loss_leaves_inputs_alone_and_grads_reach_only_the_output() -> None:
    torch.manual_seed(0)
    loss = _loss(torch.rand(1, 3, 32, 32))
    content = torch.rand(2, 3, 32, 32)
    output = torch.rand(2, 3, 32, 32, requires_grad=True)
    before = (content.clone(), output.detach().clone())
    loss(output, content).total.backward()
    assert torch.equal(content, before[0]) and torch.equal(output.detach(), before[1])
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.vgg.parameters())


def test_style_targets_are_computed_once_and_are_not_saved() -> None:
    loss = _loss(torch.rand(1, 3, 32, 32))
    assert loss.style_target("relu2_1").shape == (1, 128, 128)
    assert not any(k.startswith("gram_") for k in loss.state_dict())


def test_relative_normalisation_makes_losses_independent_of_feature_scale() -> None:
    torch.manual_seed(0)
    style, content, output = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    vgg = VGG19Features(["relu2_2", "relu1_1", "relu2_1"], weights="random")
    layers = {"relu1_1": 1.0, "relu2_1": 1.0}
    plain = PerceptualLoss(vgg, style, ["relu2_2"], layers, 1.0, 1.0, 0.0)(output, content)
    with torch.no_grad():  # scale every activation by 255, as Caffe weights do relative to torchvision's
        vgg.features[0].weight *= 255
        for conv in vgg.features:
            if isinstance(conv, torch.nn.Conv2d):
                conv.bias *= 255
    scaled = PerceptualLoss(vgg, style, ["relu2_2"], layers, 1.0, 1.0, 0.0)(output, content)
    assert scaled.content.item() == pytest.approx(plain.content.item(), rel=1e-3)
    assert scaled.style.item() == pytest.approx(plain.style.item(), rel=1e-3)


def test_mismatched_layer_weights_are_refused() -> None:
    from stylenet.errors import ConfigError

    with pytest.raises(ConfigError, match="style_layer_weights"):
        build_perceptual_loss(torch.rand(1, 3, 32, 32), "random", ["relu2_2"], ["relu1_1"], 1, 1, 1, [1.0, 2.0])


@pytest.mark.slow
def test_a_few_hundred_steps_on_one_photo_lower_the_style_loss() -> None:
    """The real objective (Caffe VGG19, The Starry Night) is learnable: overfit one photo."""
    from skimage import data

    from stylenet.networks.transformer import TransformerNet
    from stylenet.styles import load_style_image

    torch.manual_seed(0)
    photo = torch.from_numpy(data.chelsea()[:, 75:375]).permute(2, 0, 1).float().div(255).unsqueeze(0)
    photo = torch.nn.functional.interpolate(photo, size=(64, 64), mode="bilinear", antialias=True)
    loss = build_perceptual_loss(
        load_style_image("starry_night.jpg", 128), "caffe", ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1"], 1, 5, 1
    )
    net = TransformerNet(width=0.5, num_residual_blocks=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    style_losses = []
    for _ in range(200):
        terms = loss(net(photo), photo)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        style_losses.append(terms.style.item())
    first, last = sum(style_losses[:10]) / 10, sum(style_losses[-10:]) / 10
    assert last < 0.3 * first, (first, last)


def test_gram_trace_reports_the_trace_of_the_loss_target_and_ranks_errors_by_it(monkeypatch, capsys, tmp_path) -> None:
    # docs/video.md's Gram-trace table comes from this script; its trace must be the loss's own target.
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import gram_trace

    assert gram_trace.spearman([1.0, 2.0, 3.0, 4.0], [0.1, 0.5, 0.7, 2.0]) == 1.0
    assert gram_trace.spearman([1.0, 2.0, 3.0, 4.0], [2.0, 0.7, 0.5, 0.1]) == -1.0
    assert gram_trace.spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == 0.5

    report = tmp_path / "video_report.json"
    report.write_text(json.dumps({"clips": [{"clip": "a.avi", "warping_error": {"model/starry": 0.00123}}]}))
    monkeypatch.setattr(sys, "argv", ["gram_trace.py", "starry", "--video-report", str(report)])
    gram_trace.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split("|")[1:-1] == [
        " style ",
        " relu1_1 ",
        " relu2_1 ",
        " relu3_1 ",
        " relu4_1 ",
        " relu5_1 ",
        " sum ",
        " a.avi warping error ",
    ]
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[0] == "starry" and cells[-1] == "0.00123"
    assert len(lines) == 3  # one style: no rank correlation

    for argv, message in (
        (["nosuch"], "no style config named nosuch; configured: composition_vii, scream, starry, udnie, wave"),
        (["starry", "--video-report", str(report), "--which", "baseline"], "has no baseline errors for starry"),
    ):
        monkeypatch.setattr(sys, "argv", ["gram_trace.py", *argv])
        with pytest.raises(SystemExit):
            gram_trace.main()
        assert message in capsys.readouterr().err

    loss = build_perceptual_loss(
        load_style_image("starry_night.jpg", 512), "caffe", ["relu2_2"], list(LOSS_CONFIG.style_layers), 1, 1, 0
    )
    expected = [float(torch.diagonal(loss.style_target(layer)[0]).sum()) for layer in loss.style_layers]
    assert [float(cell) for cell in cells[1:6]] == pytest.approx(expected, rel=1e-3, abs=1)
    assert float(cells[6]) == pytest.approx(sum(expected), rel=1e-3)
