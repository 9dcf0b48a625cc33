"""`stylenet evaluate --video`: warping errors from estimated flow (real clips) and from known flow (exact pairs)."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_VIDEOS
from skip_policy import needs_clip, needs_extra

from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.imageio import to_array
from stylenet.losses.temporal import TemporalPair, masked_mse, temporal_error, warp
from stylenet.networks.transformer import TransformerNet

av = pytest.importorskip("av", reason=needs_extra("video"))
pytest.importorskip("cv2", reason=needs_extra("video"))

from stylenet.stability.flow import FrameFlow  # noqa: E402  (needs OpenCV)
from stylenet.stability.measure import ExactPairs, clip_errors, exact_pairs  # noqa: E402


def scene(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random texture, larger than the frames cut from it, so that they can pan across it."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, height // 6, width // 6))).float()
    big = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (big[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)


def panning_frames(count: int, step: int = 1, noise: float = 0.0, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """`count` frames of a camera panning `step` px per frame across `scene()`, with Gaussian noise (grey levels)."""
    world, (width, height) = scene(), size
    rng = np.random.default_rng(1)
    frames = []
    for index in range(count):
        frame = world[8 : 8 + height, 8 + index * step : 8 + index * step + width].astype(np.float32)
        frames.append(np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8))
    return frames


def as_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255


def test_estimated_flow_lines_the_previous_frame_up_with_the_next() -> None:
    previous, current = panning_frames(2, step=3)
    flow, mask = FrameFlow()(previous, current)
    assert flow.shape == (1, 2, 48, 64) and mask.shape == (1, 1, 48, 64)
    inner = flow[..., 8:-8, 8:-8]
    assert inner[:, 0].mean().item() == pytest.approx(3.0, abs=0.5)  # the scene moved 3 px left: look 3 px right
    assert inner[:, 1].abs().mean().item() < 0.5
    aligned = masked_mse(as_tensor(current), warp(as_tensor(previous), flow)[0], mask).item()
    unaligned = masked_mse(as_tensor(current), as_tensor(previous), torch.ones_like(mask)).item()
    assert aligned < 0.1 * unaligned
    assert mask[..., -2:].sum() == 0  # the last columns came from outside the previous frame: not trusted


def test_fine_texture_moved_by_a_known_sub_pixel_flow_is_tracked_at_full_resolution(monkeypatch) -> None:
    import stylenet.stability.flow as flow_module

    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.random((1, 3, 32, 43))).float()  # detail every 3 px
    image = torch.nn.functional.interpolate(coarse, size=(96, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    rows, columns = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    known = torch.stack([2.0 + 1.5 * torch.sin(3 * rows), torch.cos(4 * columns)]).unsqueeze(0)  # x 2-3.5 px, y +-1
    moved, _ = warp(image, known)
    frames = [to_array(picture[0]) for picture in (image, moved)]

    def endpoint_error() -> float:
        estimated, mask = FrameFlow()(*frames)
        trusted = mask[0, 0, 8:-8, 8:-8] > 0
        assert trusted.float().mean() > 0.9
        return (estimated - known)[0, :, 8:-8, 8:-8].pow(2).sum(0).sqrt()[trusted].mean().item()

    full = endpoint_error()
    monkeypatch.setattr(flow_module, "FINEST_SCALE", 1)  # the preset's own: half the resolution
    half = endpoint_error()
    assert full < 0.04 < half  # about 0.013 px against 0.09 px


def test_a_stable_model_scores_the_input_floor_and_a_flickering_one_more() -> None:
    frames = panning_frames(5, step=1, noise=2.0)
    generator = torch.Generator().manual_seed(0)

    def flicker(images: torch.Tensor) -> torch.Tensor:  # new noise every frame: what boiling texture does
        return (images + 0.1 * torch.randn(images.shape, generator=generator)).clamp(0, 1)

    errors = clip_errors({"identity": lambda images: images, "flicker": flicker}, frames)
    assert len(errors["input"]) == 4
    assert errors["identity"] == pytest.approx(errors["input"])
    assert min(errors["flicker"]) > 5 * max(errors["input"])


def test_exact_pairs_measure_the_noise_alone_for_a_model_that_follows_the_motion() -> None:
    frames = panning_frames(3, noise=0.0)
    texture = torch.rand(1, 3, 48, 64)
    errors = exact_pairs(
        {"identity": lambda images: images, "glued": lambda images: 0.5 * images + 0.5 * texture},
        frames,
        flow=4.0,
        noise=0.02,
    )
    assert errors["input"] == pytest.approx(0.02**2, rel=0.15)  # the noise's variance
    assert errors["identity"] == pytest.approx(errors["input"])
    assert errors["glued"] > 5 * errors["input"]  # a texture fixed to the frame does not follow the motion


def test_the_exact_measure_reuses_the_stylisations_the_clip_measure_made() -> None:
    frames = panning_frames(4, noise=0.0)
    calls = []

    def counted(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        return images.flip(-1)

    fresh = exact_pairs({"m": counted}, frames[::2], flow=4.0, noise=0.02)
    assert len(calls) == 4  # each frame and its moved copy
    calls.clear()
    streamed = ExactPairs({"m": counted}, flow=4.0, noise=0.02)
    clip_errors({"m": counted}, frames, exact=streamed, exact_at={0, 2})
    assert len(calls) == 4 + 2  # each frame once, then the moved copies of frames 0 and 2 only
    assert streamed.means() == fresh


def listed_exact_pairs(stylizers: dict, frames: list[np.ndarray], flow: float, noise: float) -> dict[str, float]:
    """The exact measure the plain way: over a list of the frames, each stylised afresh."""
    pair, generator = TemporalPair(flow, noise), torch.Generator().manual_seed(0)
    sums = {"input": 0.0, **{name: 0.0 for name in stylizers}}
    for frame in frames:
        image = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255
        moved, known, _ = pair(image, generator)
        sums["input"] += float(temporal_error(image, moved, known)[0])
        for name, stylizer in stylizers.items():
            sums[name] += float(temporal_error(stylizer(image), stylizer(moved), known)[0])
    return {name: total / len(frames) for name, total in sums.items()}


def random_stylizer(seed: int):
    """A small random convolutional network: a stylizer whose output depends on its input, cheap on a CPU."""
    torch.manual_seed(seed)
    network = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 3, 3, padding=1, padding_mode="reflect"),
        torch.nn.Sigmoid(),
    ).eval()

    @torch.no_grad()
    def stylize(images: torch.Tensor) -> torch.Tensor:
        return network(images)

    return stylize


def test_the_streamed_exact_measure_equals_the_one_over_a_list_of_the_spread_frames() -> None:
    from stylenet.stability.run import EXACT_FRAMES

    frames = panning_frames(17, noise=2.0, size=(32, 24))
    stylizers = {"model/a": random_stylizer(0), "baseline/b": random_stylizer(1)}
    spread = list(range(0, 17, max(17 // EXACT_FRAMES, 1)))[:EXACT_FRAMES]  # as evaluate spreads them
    streamed = ExactPairs(stylizers, flow=4.0, noise=0.02)
    clip_errors(stylizers, iter(frames), exact=streamed, exact_at=set(spread))
    assert streamed.count == len(spread) > 1
    assert streamed.means() == listed_exact_pairs(stylizers, [frames[i] for i in spread], flow=4.0, noise=0.02)


class Census:
    """How many of the objects it was shown are alive, and the most that were at once."""

    def __init__(self) -> None:
        self.alive = self.most = 0

    def __call__(self, thing):
        self.alive += 1
        self.most = max(self.most, self.alive)
        weakref.finalize(thing, self._gone)
        return thing

    def _gone(self) -> None:
        self.alive -= 1


def test_evaluate_video_holds_a_couple_of_frames_at_a_time_not_the_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet.stability import run

    world, decoded, stylized = scene(), Census(), Census()

    def reader(clip, limit=None):  # each frame a new array, made only when asked for
        for index in range(limit):
            yield decoded(world[8:32, 8 + index : 40 + index].copy())

    def stylizer(images: torch.Tensor) -> torch.Tensor:
        return stylized(images.flip(-1))

    stylizers = {"model/a": stylizer, "baseline/b": stylizer}
    monkeypatch.setattr(run, "read_frames", reader)
    monkeypatch.setattr(run, "_stylizers", lambda models, style, device: stylizers)
    clip = tmp_path / "pan.avi"
    clip.write_bytes(b"")
    report = run.evaluate_video("a.pt", [clip], tmp_path / "out", baseline="b.pt", frames=17)
    (entry,) = report["clips"]
    assert entry["frames"] == 17 and entry["size"] == [32, 24] and len(entry["per_frame"]["input"]) == 16
    assert decoded.most <= 3  # the frame being measured and the one before, not the 17
    assert stylized.most <= 2 * len(stylizers) + 1  # the previous frame's, this frame's and one moved copy's


def make_clip(path: Path, frames: list[np.ndarray]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return path


def tiny_model(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    return save_inference_checkpoint(path, network, {"style": {"name": f"tiny{seed}"}, "steps": 1})


@pytest.mark.slow
def test_evaluate_video_writes_a_report_with_the_floor_each_model_and_their_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip(tmp_path / "pan.mp4", panning_frames(6, noise=2.0))
    model, baseline = tiny_model(tmp_path / "a.pt", 0), tiny_model(tmp_path / "b.pt", 1)
    out = tmp_path / "report"
    argv = ["evaluate", str(model), "--video", str(clip), "--baseline", str(baseline), "--frames", "5", "-o", str(out)]
    assert main([*argv, "--video-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "pan.mp4: warping error input" in printed and "video_report.md" in printed
    report = json.loads((out / "video_report.json").read_text())
    (entry,) = report["clips"]
    assert entry["frames"] == 5 and entry["size"] == [32, 24]  # --video-size: the longest side
    assert set(entry["per_frame"]) == {"input", "model/tiny0", "baseline/tiny1"}
    assert all(len(values) == 4 for values in entry["per_frame"].values())
    means = entry["warping_error_by_model"]
    assert 0 < means["input"] and 0 < means["model"] and 0 < means["baseline"]
    assert means["model"] == pytest.approx(np.mean(entry["per_frame"]["model/tiny0"]))
    assert entry["exact_error"]["input"] == pytest.approx(0.02**2, rel=0.3)
    markdown = (out / "video_report.md").read_text()
    assert f"{means['model'] / means['baseline']:.2f}x" in markdown
    assert (out / entry["chart"]).is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--frames", "3"], "--photos FOLDER, --video CLIP..., or both"),
        (["--photos", ".", "--baseline", "x.pt"], "--baseline compares warping errors: it needs --video"),
        (["--video", "missing.mp4"], "--video missing.mp4: no such file"),
        (["--video", "CLIP", "--frames", "1"], "--frames must be at least 2"),
        (["--video", "CLIP", "--video-size", "8"], "--video-size must be at least 16"),
    ],
)
def test_evaluate_video_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    clip = make_clip(tmp_path / "pan.mp4", panning_frames(3))
    model = tiny_model(tmp_path / "a.pt", 0)
    argv = [str(clip) if arg == "CLIP" else arg for arg in argv]
    assert main(["evaluate", str(model), *argv, "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--photos", "nowhere"], "nowhere: no such photos folder"),
        (["--photos", ".", "--size", "0"], "--size must be at least 8 pixels"),
        (["--video", "BROKEN"], "notes.mp4: not a readable video"),  # the second clip, after a good one
    ],
)
def test_what_would_stop_the_run_later_is_found_before_any_clip_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str
) -> None:
    clip = make_clip(tmp_path / "pan.mp4", panning_frames(3))
    (tmp_path / "notes.mp4").write_text("not a video")
    extra = [str(tmp_path / "notes.mp4") if arg == "BROKEN" else arg for arg in extra]
    if extra[0] == "--video":  # the one --video below takes both clips: the good one, then this
        extra = extra[1:]

    def measured(*args, **kwargs):
        raise AssertionError("a clip was measured before the mistake was found")

    monkeypatch.setattr("stylenet.stability.run.clip_errors", measured)
    out = tmp_path / "out"
    assert main(["evaluate", str(tiny_model(tmp_path / "a.pt", 0)), "--video", str(clip), *extra, "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not out.exists()


def test_a_clip_that_stops_decoding_is_measured_on_the_frames_before_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet.inference.video import VideoError
    from stylenet.stability import run

    def cut_off(clip, limit=None):
        yield from panning_frames(3)
        raise VideoError(f"{clip}: cannot decode video (Invalid data found when processing input)")

    monkeypatch.setattr(run, "read_frames", cut_off)
    assert run._count_frames(tmp_path / "cut.avi", 10, None) == (3, [64, 48])
    assert capsys.readouterr().err == (
        f"warning: {tmp_path / 'cut.avi'}: cannot decode video (Invalid data found when processing input); "
        "measured on the 3 frame(s) before it\n"
    )
    assert len(list(run._clip_frames(tmp_path / "cut.avi", 3, None))) == 3  # never asks for the frame that fails
    assert capsys.readouterr().err == ""


def test_a_file_without_video_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    assert main(["evaluate", str(tiny_model(tmp_path / "a.pt", 0)), "--video", str(fake)]) == 2
    error = capsys.readouterr().err
    assert "notes.mp4: not a readable video" in error and error.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vtest.avi", "tree.avi"])
def test_the_flow_lines_up_the_frames_of_real_clips(name: str) -> None:
    if not (SHARED_VIDEOS / name).is_file():
        pytest.skip(needs_clip(name))
    from stylenet.inference.video import read_frames

    frames = list(read_frames(SHARED_VIDEOS / name, 6))
    aligned = clip_errors({}, frames)["input"]
    as_they_are = [np.mean((a.astype(float) - b) ** 2) / 255**2 for a, b in zip(frames[:-1], frames[1:], strict=True)]
    assert len(aligned) == 5
    assert np.mean(aligned) < 0.9 * np.mean(as_they_are)  # the flow explains part of each change (tree.avi: 0.8)
