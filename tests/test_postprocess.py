import pytest
import torch
import torch.nn.functional as F
from skimage import data

from stylenet.inference.postprocess import blend, preserve_color, rgb_to_yiq, yiq_to_rgb


def _chelsea(height: int = 60, width: int = 90) -> torch.Tensor:
    """The CC0 cat photo from scikit-image, (1, 3, H, W) in [0, 1]."""
    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255)[None]  # (1, 3, 300, 451)
    return F.interpolate(photo, size=(height, width), mode="area").clamp(0, 1)


def _blue_tinted(images: torch.Tensor) -> torch.Tensor:
    """A stand-in for a stylized image: darker, contrastier and strongly blue."""
    tint = torch.tensor([0.5, 0.7, 1.0]).view(1, 3, 1, 1)
    return (images * tint * 1.2 + torch.tensor([0.0, 0.05, 0.25]).view(1, 3, 1, 1)).clamp(0, 1)


def test_yiq_has_the_ntsc_luma_and_neutral_chroma_for_greys() -> None:
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T.reshape(1, 3, 1, 4)
    yiq = rgb_to_yiq(rgb)
    assert torch.allclose(yiq[0, 0, 0], torch.tensor([1.0, 0.5, 0.299, 0.114]), atol=1e-6)
    assert yiq[0, 1:, 0, :2].abs().max() < 1e-5  # white and grey carry no colour
    assert yiq[0, 1, 0, 2] > 0.5 and yiq[0, 2, 0, 3] > 0.3  # red is +I, blue is +Q
    assert torch.allclose(yiq_to_rgb(yiq), rgb, atol=1e-6)


def test_preserve_color_keeps_content_chroma_and_stylized_luma_on_a_photo() -> None:
    content = _chelsea()
    stylized = _blue_tinted(content)
    out = preserve_color(content, stylized)
    assert out.shape == content.shape and out.dtype == content.dtype
    assert out.min() >= 0 and out.max() <= 1

    # Pixels where no channel was clamped: there the YIQ recombination must hold exactly.
    unclamped = ((out > 0) & (out < 1)).all(dim=1, keepdim=True)  # (1, 1, H, W)
    assert unclamped.float().mean() > 0.9
    yiq_out, yiq_content, yiq_stylized = rgb_to_yiq(out), rgb_to_yiq(content), rgb_to_yiq(stylized)
    chroma_err = (yiq_out[:, 1:] - yiq_content[:, 1:]).abs()  # (1, 2, H, W)
    luma_err = (yiq_out[:, :1] - yiq_stylized[:, :1]).abs()  # (1, 1, H, W)
    assert chroma_err.masked_select(unclamped).max() < 0.02
    assert luma_err.masked_select(unclamped).max() < 1e-5
    # Even counting clamped pixels, the colour is the content's, not the blue tint's.
    assert chroma_err.mean() < 0.01
    assert (yiq_stylized[:, 1:] - yiq_content[:, 1:]).abs().mean() > 0.05
    blueness = lambda x: (x[:, 2] - x[:, 0]).mean()  # noqa: E731
    assert abs(blueness(out) - blueness(content)) < 0.02 < blueness(stylized) - blueness(content)


def test_preserve_color_is_the_identity_for_equal_images() -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 17, 23)
    assert torch.allclose(preserve_color(images, images), images, atol=1e-5)
    photo = _chelsea()
    assert torch.allclose(preserve_color(photo, photo), photo, atol=1e-5)


def test_preserve_color_does_not_modify_its_inputs() -> None:
    content = _chelsea(20, 30)
    stylized = _blue_tinted(content)
    before = content.clone(), stylized.clone()
    preserve_color(content, stylized)
    assert torch.equal(content, before[0]) and torch.equal(stylized, before[1])


def test_preserve_color_refuses_different_sizes() -> None:
    with pytest.raises(ValueError):
        preserve_color(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError):
        preserve_color(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))


def test_blend_ends_are_exact_and_middle_is_the_mean() -> None:
    torch.manual_seed(0)
    content, stylized = torch.rand(2, 3, 11, 13), torch.rand(2, 3, 11, 13)
    before = content.clone(), stylized.clone()
    assert torch.equal(blend(content, stylized, 0.0), content)
    assert torch.equal(blend(content, stylized, 0), content)
    assert torch.equal(blend(content, stylized, 1.0), stylized)
    assert torch.allclose(blend(content, stylized, 0.5), (content + stylized) / 2, atol=1e-7)
    quarter = blend(content, stylized, 0.25)
    assert torch.allclose(quarter, 0.75 * content + 0.25 * stylized, atol=1e-6)
    assert blend(content, stylized, 0.0) is not content  # a new tensor, not an alias of the input
    assert torch.equal(content, before[0]) and torch.equal(stylized, before[1])


@pytest.mark.parametrize("strength", [-0.1, 1.01, float("nan"), float("inf")])
def test_blend_refuses_strength_outside_unit_interval(strength: float) -> None:
    with pytest.raises(ValueError):
        blend(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), strength)


def test_blend_refuses_different_sizes() -> None:
    with pytest.raises(ValueError):
        blend(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), 0.5)
