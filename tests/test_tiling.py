from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from stylenet.inference.tiling import default_overlap, stylize_tiled, tile_starts
from stylenet.networks.transformer import TransformerNet


class Recorder:
    """Wraps an fn and records the shape of every tile it is given."""

    def __init__(self, fn=lambda x: x):
        self.fn = fn
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.fn(x)


def _chelsea(height: int, width: int) -> torch.Tensor:
    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255)[None]  # (1, 3, 300, 451)
    return F.interpolate(photo, size=(height, width), mode="area").clamp(0, 1)


@pytest.mark.parametrize(
    "shape, tile",
    [((1, 3, 70, 53), 32), ((2, 3, 100, 100), 48), ((3, 3, 17, 95), 16), ((1, 3, 33, 200), 32), ((1, 3, 64, 64), 32)],
)
def test_identity_fn_reproduces_the_image(shape: tuple[int, ...], tile: int) -> None:
    torch.manual_seed(0)
    images = torch.rand(shape)
    out = stylize_tiled(lambda x: x, images, tile)
    assert out.shape == images.shape
    assert torch.allclose(out, images, atol=1e-6)


@pytest.mark.parametrize("size", [16, 17, 33, 53, 70, 100, 257])
@pytest.mark.parametrize("tile, overlap", [(16, 7), (32, 8), (32, 0), (48, 15)])
def test_tile_starts_cover_the_axis_with_full_tiles(size: int, tile: int, overlap: int) -> None:
    starts = tile_starts(size, tile, overlap)
    if size <= tile:
        assert starts == [0]
        return
    assert starts[0] == 0 and starts[-1] == size - tile  # the last tile is shifted inward, not cut short
    gaps = [b - a for a, b in pairwise(starts)]
    assert all(0 < g <= tile - overlap for g in gaps)  # full coverage with at least the requested overlap


def test_default_overlap_is_an_eighth_at_least_8_and_under_half() -> None:
    assert default_overlap(256) == 32
    assert default_overlap(32) == 8
    assert default_overlap(16) == 7
    assert all(default_overlap(t) < t // 2 for t in range(16, 300))


def test_local_fn_matches_the_untiled_result() -> None:
    torch.manual_seed(0)
    # Two zero-padded 3x3 convolutions: a 5x5 receptive field and no normalisation, so apart from each tile's
    # own padding the tiles see exactly what the whole image sees; the blending window leaves those edges out.
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 3, 3, padding=1)).eval()
    images = torch.rand(2, 3, 70, 53)
    with torch.no_grad():
        whole = net(images)
    tiled = stylize_tiled(net, images, 32)
    assert torch.allclose(tiled, whole, atol=1e-5)


def _gradient_profiles(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute difference between neighbouring columns, (W - 1,), and rows, (H - 1,)."""
    cols = (images[..., 1:] - images[..., :-1]).abs().mean(dim=(0, 1, 2))  # (W - 1,)
    rows = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(0, 1, 3))  # (H - 1,)
    return cols, rows


def _seam_ratio(profile: torch.Tensor, edges: list[int]) -> float:
    """Largest gradient across a tile edge (between pixels e - 1 and e), relative to the median gradient."""
    return float(profile[[e - 1 for e in edges]].max() / profile.median())


def _tile_edges(size: int, starts: list[int], extent: int) -> list[int]:
    """Where tiles begin or end inside the image: the places a pasted tile would leave a seam."""
    edges = set(starts[1:]) | {s + extent for s in starts[:-1]}
    return sorted(e for e in edges if 0 < e < size)


def _band_ratio(profile: torch.Tensor, untiled: torch.Tensor, size: int, starts: list[int], extent: int) -> float:
    """Gradient excess over the untiled output anywhere inside an overlap band, relative to the median excess
    outside the bands: catches a seam wherever the cross-fade puts it, not only at tile edges, while dividing
    by the untiled gradient discounts the photo's own edges."""
    excess = profile / untiled.clamp_min(1e-3)  # (size - 1,)
    band = sorted({c for a, b in pairwise(starts) for c in range(b, a + extent + 1) if 0 < c < size})
    inside = torch.zeros_like(excess, dtype=torch.bool)
    inside[[c - 1 for c in band]] = True
    return float(excess[inside].max() / excess[~inside].median())


def test_transformer_net_tiles_blend_without_seams() -> None:
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    height, width, tile = 96, 144, 48
    images = _chelsea(height, width)
    with torch.no_grad():
        whole = net(images)
        tiled = stylize_tiled(net, images, tile)
        # Control: the same tiles pasted side by side without overlap show seams the metrics must catch,
        # because instance norm and padding make each tile's output differ from its neighbours'.
        naive = torch.zeros_like(images)
        for y in range(0, height, tile):
            for x in range(0, width, tile):
                naive[..., y : y + tile, x : x + tile] = net(images[..., y : y + tile, x : x + tile])
    assert tiled.shape == images.shape and tiled.min() >= 0 and tiled.max() <= 1
    whole_cols, whole_rows = _gradient_profiles(whole)

    naive_cols, naive_rows = _gradient_profiles(naive)
    naive_starts = [0, 48, 96]
    assert _seam_ratio(naive_cols, [48, 96]) > 1.8 and _seam_ratio(naive_rows, [48]) > 1.8
    assert _band_ratio(naive_cols, whole_cols, width, naive_starts, tile) > 1.8
    assert _band_ratio(naive_rows, whole_rows, height, naive_starts[:2], tile) > 1.8

    overlap = default_overlap(tile)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    assert len(ys) > 1 and len(xs) > 1
    cols, rows = _gradient_profiles(tiled)
    assert _seam_ratio(cols, _tile_edges(width, xs, tile)) < 1.5
    assert _seam_ratio(rows, _tile_edges(height, ys, tile)) < 1.5
    assert _seam_ratio(cols, [48, 96]) < 1.5 and _seam_ratio(rows, [48]) < 1.5  # nor where naive tiles meet
    assert _band_ratio(cols, whole_cols, width, xs, tile) < 1.5
    assert _band_ratio(rows, whole_rows, height, ys, tile) < 1.5


def test_fn_is_called_once_per_tile_with_tiles_at_most_tile_sized() -> None:
    images = torch.rand(2, 3, 70, 53)
    fn = Recorder()
    stylize_tiled(fn, images, 32)
    expected = len(tile_starts(70, 32, default_overlap(32))) * len(tile_starts(53, 32, default_overlap(32)))
    assert len(fn.shapes) == expected == 6
    assert all(shape == (2, 3, 32, 32) for shape in fn.shapes)  # full-size tiles only, no slivers


def test_a_thin_image_is_tiled_along_its_long_axis_only() -> None:
    images = torch.rand(1, 3, 20, 100)
    fn = Recorder()
    out = stylize_tiled(fn, images, 32)
    assert len(fn.shapes) == len(tile_starts(100, 32, 8)) and all(s == (1, 3, 20, 32) for s in fn.shapes)
    assert torch.allclose(out, images, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 40, 40), (2, 3, 31, 17), (1, 3, 64, 64)])
def test_an_image_that_fits_in_one_tile_calls_fn_once_on_the_whole(shape: tuple[int, ...]) -> None:
    images = torch.rand(shape)
    fn = Recorder(lambda x: x * 2)
    out = stylize_tiled(fn, images, 64)
    assert fn.shapes == [shape]
    assert torch.equal(out, images * 2)


def test_inputs_are_unchanged_even_by_an_in_place_fn() -> None:
    images = torch.rand(1, 3, 50, 70)
    before = images.clone()
    out = stylize_tiled(lambda x: x.mul_(2), images, 32)
    assert torch.equal(images, before)
    assert torch.allclose(out, before * 2, atol=1e-6)


def test_result_has_the_dtype_fn_returns() -> None:
    images = torch.rand(1, 3, 40, 40)
    out = stylize_tiled(lambda x: x.to(torch.float64), images, 16)
    assert out.dtype == torch.float64 and torch.allclose(out, images.double(), atol=1e-6)


@pytest.mark.parametrize("tile, overlap", [(15, None), (8, None), (32, 16), (32, -1)])
def test_bad_tile_or_overlap_is_refused(tile: int, overlap: int | None) -> None:
    with pytest.raises(ValueError):
        stylize_tiled(lambda x: x, torch.rand(1, 3, 64, 64), tile, overlap)


def test_fn_changing_the_tile_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        stylize_tiled(lambda x: x[..., :-1], torch.rand(1, 3, 64, 64), 32)
