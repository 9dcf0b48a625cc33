"""The temporal term (stylenet/losses/temporal.py) and fine-tuning a trained model with it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_config, tiny_overrides
from test_train import _tags_by_plugin

from stylenet.checkpoint import load_inference_checkpoint, load_lightning_checkpoint, read_lightning_checkpoint
from stylenet.errors import ConfigError
from stylenet.losses.perceptual import LossTerms, build_perceptual_loss
from stylenet.losses.temporal import TemporalPair, random_smooth_flow, temporal_error, warp
from stylenet.networks.transformer import TransformerNet
from stylenet.train import train

REPO = Path(__file__).resolve().parents[1]


def _textured(batch: int = 2, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(batch, 3, size // 4, size // 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_warp_by_a_whole_pixel_shift_is_exact_and_masks_what_comes_from_outside() -> None:
    images = torch.rand(1, 3, 8, 10)
    flow = torch.zeros(1, 2, 8, 10)
    flow[:, 0] = 2.0  # each pixel comes from two to its right
    moved, inside = warp(images, flow)
    torch.testing.assert_close(moved[..., :8], images[..., 2:])
    assert inside[0, 0, :, :8].all() and not inside[0, 0, :, 8:].any()


def test_random_flows_are_bounded_and_smooth() -> None:
    flow = random_smooth_flow(4, 64, 64, magnitude=8.0, generator=torch.Generator().manual_seed(0))
    assert flow.shape == (4, 2, 64, 64)
    assert 0 < flow.abs().max() < 8.0 * 3  # a shift of up to 8 px plus a local motion about half as large
    neighbours = (flow[..., 1:] - flow[..., :-1]).abs().max()
    assert neighbours < 1.0  # no tearing between adjacent pixels
    assert (flow[0] - flow[1]).abs().max() > 0.1  # each image its own motion


def test_a_network_that_follows_the_motion_has_no_temporal_error_and_one_that_does_not_has() -> None:
    images = _textured()
    moved, flow, _ = TemporalPair(flow=4.0, noise=0.0)(images, torch.Generator().manual_seed(0))
    assert temporal_error(images, moved, flow).max() < 1e-10  # identity: the output moves with the input
    fixed_texture = torch.rand(1, 3, 32, 32)
    error = temporal_error(images * 0.5 + fixed_texture, moved * 0.5 + fixed_texture, flow)
    assert (error > 1e-3).all()  # a texture glued to the frame does not follow the motion: it boils


def test_noise_of_the_pair_has_the_asked_strength() -> None:
    images = torch.full((2, 3, 64, 64), 0.5)
    moved, flow, _ = TemporalPair(flow=0.0, noise=0.05)(images, torch.Generator().manual_seed(0))
    assert flow.abs().max() == 0
    assert (moved - images).std().item() == pytest.approx(0.05, rel=0.05)
    with pytest.raises(ValueError, match=">= 0"):
        TemporalPair(flow=-1.0, noise=0.0)


def _loss(temporal_weight: float, detach: bool = False):
    style = torch.rand(1, 3, 32, 32)
    return build_perceptual_loss(
        style,
        "random",
        ["relu2_2"],
        ["relu1_1", "relu2_1"],
        1.0,
        1.0,
        0.0,
        temporal_weight=temporal_weight,
        temporal_detach=detach,
    )


def test_the_term_is_off_at_weight_zero_and_trains_the_network_when_on() -> None:
    network = TransformerNet(width=0.25, num_residual_blocks=1)
    images = _textured()
    output = network(images)
    assert _loss(0.0).temporal_pair is None
    assert "temporal_loss" not in _loss(0.0)(output, images).as_dict()

    loss = _loss(10.0)
    moved, flow, _ = loss.temporal_pair(images)
    term = loss.temporal(network(moved), output, flow)
    assert term.dim() == 0 and term > 0
    term.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters() if p.dim() == 4)
    with pytest.raises(ConfigError, match="temporal_weight"):
        _loss(-1.0)


@pytest.mark.parametrize("detach", [False, True])
def test_a_detached_target_pulls_only_the_moved_copys_output(detach: bool) -> None:
    loss = _loss(10.0, detach=detach)
    images = _textured()
    moved, flow, _ = loss.temporal_pair(images, torch.Generator().manual_seed(0))
    output = images.clone().requires_grad_()  # stand-ins for the network's two outputs
    moved_output = moved.clone().requires_grad_()
    term = loss.temporal(moved_output, output, flow)
    term.backward()
    assert term > 0 and moved_output.grad.abs().sum() > 0
    if detach:
        assert output.grad is None
    else:
        assert output.grad.abs().sum() > 0


@pytest.mark.parametrize("motion", ["smooth", "objects", "still"])
def test_training_with_the_term_logs_it_and_counts_it_in_the_total(tmp_path: Path, motion: str) -> None:
    overrides = ["loss.temporal_weight=5", "loss.temporal_flow=2", f"loss.temporal_motion={motion}"]
    cfg = compose_config([*tiny_overrides(tmp_path), *overrides])
    train(cfg)
    scalars = _tags_by_plugin(tmp_path / "run")["scalars"]
    assert {"train/temporal_loss", "val/temporal_loss"} <= scalars
    terms = LossTerms(*(torch.tensor(float(v)) for v in (1, 2, 3, 4)))
    assert terms.total == 10 and terms.as_dict()["temporal_loss"] == 4
    assert LossTerms(*(torch.tensor(float(v)) for v in (1, 2, 3))).total == 6


BAD_TEMPORAL = [
    "loss.temporal_weight=-1",
    "loss.temporal_noise=-0.1",
    "loss.temporal_flow=abc",
    "loss.temporal_motion=zoom",
    "loss.temporal_detach=maybe",
    "loss.temporal_seam=-1",
    "loss.temporal_seam=1.5",
]


@pytest.mark.parametrize("bad", BAD_TEMPORAL)
def test_bad_temporal_settings_stop_before_training(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="loss.temporal"):
        train(compose_config([*tiny_overrides(tmp_path), bad]))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_finetuning_trains_every_weight_of_a_model_on_from_its_step(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(compose_config(tiny_overrides(first)))
    start, _ = load_inference_checkpoint(first / "kept" / "starry.pt")

    second = tmp_path / "second"
    cfg = compose_config(
        [*tiny_overrides(second), f"finetune={first / 'kept' / 'starry.pt'}", "loss.temporal_weight=5"]
    )
    result = train(cfg)
    tuned, metadata = load_inference_checkpoint(result["model"])
    assert metadata["steps"] == 8  # 4 before, 4 now
    # A model read from the run's checkpoints counts the steps before it too (resume, export, evaluate).
    checkpoints = sorted((second / "run" / "checkpoints").glob("*.ckpt"))
    assert checkpoints
    for checkpoint in checkpoints:
        _, from_checkpoint = load_lightning_checkpoint(checkpoint)
        assert from_checkpoint["steps"] == 4 + read_lightning_checkpoint(checkpoint)["global_step"]
    assert metadata["loss"]["temporal_weight"] == 5
    changed = [
        not torch.equal(a, b) for a, b in zip(start.state_dict().values(), tuned.state_dict().values(), strict=True)
    ]
    assert all(changed[:2]) and changed[-2]  # the first convolution and the last: not just the norms


def test_finetuning_refuses_a_model_of_other_styles_or_beside_init(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(compose_config(tiny_overrides(first)))
    model = first / "kept" / "starry.pt"
    with pytest.raises(ConfigError, match=r"holds the styles \['starry'\].*set style=starry"):
        train(compose_config([*tiny_overrides(tmp_path / "a"), f"finetune={model}", "style.name=other"]))
    with pytest.raises(ConfigError, match="use one of them"):
        train(compose_config([*tiny_overrides(tmp_path / "b"), f"finetune={model}", f"init={model}"]))
    assert not (tmp_path / "a" / "run").exists() and not (tmp_path / "b" / "run").exists()


def test_whole_pixel_shifts_move_pixels_without_blurring_them() -> None:
    images = torch.rand(3, 3, 16, 20)
    moved, flow, _ = TemporalPair(flow=3.0, noise=0.0, motion="shift")(images, torch.Generator().manual_seed(1))
    for image, shifted, (dx, dy) in zip(images, moved, flow[:, :, 0, 0].long().tolist(), strict=True):
        assert flow.eq(flow[:, :, :1, :1]).all() and abs(dx) <= 3 and abs(dy) <= 3
        # Pixel (x, y) of the moved copy is pixel (x + dx, y + dy) of the photo, exactly.
        inner = shifted[:, max(-dy, 0) : 16 - max(dy, 0), max(-dx, 0) : 20 - max(dx, 0)]
        source = image[:, max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 20 + min(dx, 0)]
        assert torch.allclose(inner, source, atol=1e-6)


def test_moving_objects_follow_their_own_shift_and_their_outlines_are_not_compared() -> None:
    images = _textured(batch=3, size=64)
    moved, flow, compared = TemporalPair(flow=3.0, noise=0.0, motion="objects")(
        images, torch.Generator().manual_seed(2)
    )
    assert compared is not None and compared.shape == (3, 1, 64, 64)
    for image_flow, mask in zip(flow, compared, strict=True):
        # The objects: the pixels that share one shift, about a fifth of the picture, not the background's.
        shift = torch.mode(image_flow[0].flatten()).values
        objects = (image_flow[0] == shift) & (image_flow[1] == torch.mode(image_flow[1].flatten()).values)
        assert 0.15 < objects.float().mean() < 0.25
        assert shift.abs() <= 3.0
        # Outlines (a pixel whose 3x3 neighbourhood holds both object and background) are never compared,
        # and most of the picture is.
        edge = torch.nn.functional.max_pool2d(objects[None].float(), 3, 1, 1) != -torch.nn.functional.max_pool2d(
            -objects[None].float(), 3, 1, 1
        )
        assert not mask[edge].any()
        assert 0.5 < mask.mean() < 0.95
    # The pair is exact where compared: the photo itself follows the flow.
    assert temporal_error(images, moved, flow, compared).max() < 1e-10
    # An output that follows the background but leaves the objects where they were errs, on the objects only.
    objects = torch.stack([(f[0] == torch.mode(f[0].flatten()).values) for f in flow]).unsqueeze(1)
    objects_left_behind, _ = warp(images, flow.masked_fill(objects, 0.0))
    assert (temporal_error(images, objects_left_behind, flow, compared) > 1e-5).all()
    assert temporal_error(images, objects_left_behind, flow, compared * ~objects).max() < 1e-10


def test_a_still_background_never_moves_and_its_blobs_move_by_whole_pixels() -> None:
    images = _textured(batch=4, size=64)
    moved, flow, compared = TemporalPair(flow=3.0, noise=0.0, motion="still")(images, torch.Generator().manual_seed(3))
    assert compared is not None and compared.shape == (4, 1, 64, 64)
    assert torch.equal(flow, flow.round()) and flow.abs().max() <= 3.0
    for image_flow in flow:
        moving = image_flow.abs().sum(0) > 0
        assert moving.float().mean() < 0.25  # the blobs at most; everything else stays where it is
    assert (flow.abs().sum(1) > 0).any()
    # Where nothing moves, the copy is the photo (to rounding); and every compared pixel warps exactly.
    still = flow.abs().sum(1, keepdim=True) == 0
    assert torch.allclose(moved.masked_select(still), images.masked_select(still), atol=1e-6)
    assert temporal_error(images, moved, flow, compared).max() < 1e-10
    # An output that changes where nothing moved (the spill of a moving object onto the painting) errs.
    spilled = images + 0.1 * still.float()
    assert (temporal_error(images, spilled, flow, compared) > 1e-3).all()


@pytest.mark.parametrize("motion", ["objects", "still"])
def test_the_seam_sets_how_much_of_the_blobs_outlines_is_left_out(motion: str) -> None:
    images = _textured(batch=2, size=64)
    made = {seam: TemporalPair(3.0, 0.0, motion, seam)(images, torch.Generator().manual_seed(4)) for seam in (0, 1, 3)}
    assert all(torch.equal(made[seam][1], made[0][1]) for seam in (1, 3))  # the same draw, the same motion
    compared = {seam: mask for seam, (_, _, mask) in made.items()}
    assert torch.equal(compared[0], torch.ones_like(compared[0]))  # no seam: every pixel is compared
    assert compared[3].sum() < compared[1].sum() < compared[0].sum()
    assert not (compared[3] > compared[1]).any()  # a wider seam only leaves more out


def test_an_unknown_motion_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="motion must be one of smooth, shift, objects, still"):
        TemporalPair(flow=1.0, noise=0.0, motion="zoom")


def test_a_weight_per_style_weighs_each_images_error_by_its_style() -> None:
    loss = build_perceptual_loss(
        [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)],
        "random",
        ["relu2_2"],
        ["relu1_1"],
        1.0,
        1.0,
        0.0,
        temporal_weight=[0.0, 10.0],
    )
    assert loss.temporal_pair is not None  # on: one style has a weight
    images = _textured()
    moved, flow, _ = loss.temporal_pair(images, torch.Generator().manual_seed(0))
    output, moved_output = images * 0.5 + 0.2, moved  # a brightness change: each image has an error
    errors = temporal_error(output, moved_output, flow)
    assert (errors > 0).all()
    mixed = loss.temporal(moved_output, output, flow, torch.tensor([0, 1]))
    torch.testing.assert_close(mixed, 10.0 * errors[1] / 2)
    assert loss.temporal(moved_output, output, flow, torch.tensor([0, 0])) == 0
    with pytest.raises(ConfigError, match="temporal_weight"):
        build_perceptual_loss(
            torch.rand(1, 3, 32, 32), "random", ["relu2_2"], ["relu1_1"], 1, 1, 0, temporal_weight=[1.0, 2.0]
        )


def test_a_trained_network_follows_moves_by_its_grid_and_redraws_the_others(monkeypatch, capsys) -> None:
    # What docs/video.md's "four-pixel grid" rests on, measured by the script that makes its table.
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import shift_error

    monkeypatch.setattr(
        sys, "argv", ["shift_error.py", str(REPO / "tests" / "data" / "quickstart_starry.pt"), "--size", "160"]
    )
    shift_error.main()
    assert torch.is_grad_enabled(), "the script left gradients off for whatever runs next"
    row = capsys.readouterr().out.strip().splitlines()[-1]
    one, two, three, four, eight = (float(cell) for cell in row.strip("|").split("|")[2:])
    assert min(one, two, three) > 20 * max(four, eight)
