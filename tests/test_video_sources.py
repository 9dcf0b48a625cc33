"""Sources that are awkward to write or read: an AVI's microsecond frame rate, which MPEG-4 Part 2 cannot store
exactly, files cut short or damaged, whose frames up to the damage are kept with a one-line warning, and animated
images named as videos, whose frames each have their own delay rather than a frame rate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from app_helpers import tiny_model
from conftest import SHARED_VIDEOS
from PIL import Image
from skip_policy import needs_clip, needs_extra

from stylenet.cli import main
from stylenet.inference import video
from stylenet.inference.video import VideoError, probe_video, stylize_video

av = pytest.importorskip("av", reason=needs_extra("video"))

from test_video import FRAMES, decode, frame_times, identity, invert, make_video, pattern  # noqa: E402 (needs av)

# 15 frames/s as AVI stores it, in whole microseconds per frame (tree.avi's rate): a time base of 66667/1000000,
# whose denominator is over the 16 bits MPEG-4 Part 2 has for it.
MICROSECOND_RATE = Fraction(1000000, 66667)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


def cut(source: Path, target: Path, frame: int, within: float) -> Path:
    """`source`'s bytes up to `within` (0: the start, 0.5: the middle) of the data of its video frame `frame`."""
    with av.open(str(source)) as container:
        packet = [packet for packet in container.demux(video=0) if packet.size][frame]
        end = packet.pos + int(packet.size * within)
    target.write_bytes(source.read_bytes()[:end])
    return target


# An animation's delays in ms: FFmpeg guesses 2 frames/s from them, a grid on which the first two frames share a slot.
DELAYS = [30, 1000, 1000]
COLORS = [(220, 40, 40), (40, 220, 40), (40, 40, 220)]


def animation(path: Path, image_format: str = "GIF") -> Path:
    """A 3-frame animated image of plain colors, one of `DELAYS` each, at `path` whatever its suffix."""
    frames = [Image.fromarray(np.full((48, 64, 3), color, np.uint8)) for color in COLORS]
    frames[0].save(path, format=image_format, save_all=True, append_images=frames[1:], duration=DELAYS, loop=0)
    return path


def colors(path: Path) -> list[tuple[float, ...]]:
    return [tuple(np.round(frame.mean((0, 1)))) for frame in decode(path)]


def decoder_fails(path: Path) -> bool:
    try:
        decode(path)
    except av.error.FFmpegError:
        return True
    return False


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_a_microsecond_frame_rate_is_kept(tmp_path: Path, suffix: str) -> None:
    source = make_video(tmp_path / "clip.avi", fps=MICROSECOND_RATE, audio=True, codec="mjpeg")
    out = tmp_path / f"out{suffix}"
    assert stylize_video(source, out, invert) == FRAMES
    info = probe_video(out)
    assert (info.width, info.height, info.has_audio) == (64, 48, True)
    # The source's muxer left its second slot empty (the audio's priming); an AVI counts empty slots as frames.
    assert info.frames == (probe_video(source).frames if suffix == ".avi" else FRAMES)
    # .avi: the nearest rate MPEG-4 Part 2 can store (15), a 0.0005% change; what the .mp4 reads is FFmpeg's
    # estimate from the frames' times, which are the source's (below).
    assert abs(info.fps / MICROSECOND_RATE - 1) < 1e-5
    times, source_times = frame_times(out), frame_times(source)
    assert len(times) == FRAMES and np.allclose(times - times[0], source_times - source_times[0], atol=2e-3)
    assert np.abs(decode(out)[5].astype(float) - (255 - pattern(5, 64, 48))).mean() < 8


def test_an_encoder_refusal_names_the_encoder_and_what_to_write_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_video(tmp_path / "clip.avi", fps=MICROSECOND_RATE, codec="mjpeg")
    monkeypatch.setattr(video, "_MAX_TIME_BASE_DENOMINATOR", {})  # the exact rate, which MPEG-4 Part 2 refuses
    out = tmp_path / "out.avi"
    with pytest.raises(VideoError) as caught:
        stylize_video(source, out, identity)
    message = str(caught.value)
    assert message.startswith(f"{out}: the mpeg4 encoder used for .avi files refuses this video (64x48 px at 14.9999")
    assert message.endswith("; write it as .mp4 or .mov instead") and "\n" not in message
    assert not out.exists()


@pytest.mark.parametrize("within", [0.0, 0.5], ids=["between-frames", "mid-frame"])
def test_a_truncated_video_keeps_its_frames_and_says_so(tmp_path: Path, within: float) -> None:
    whole = make_video(tmp_path / "whole.avi", frames=40, codec="mjpeg")
    source = cut(whole, tmp_path / "cut.avi", 15, within)
    out = tmp_path / "out.mp4"
    warnings: list[str] = []
    assert stylize_video(source, out, invert, warn=warnings.append) == 15
    assert probe_video(out).frames == 15 and len(decode(out)) == 15
    # A frame cut in the middle fails to decode (FFmpeg's words are kept); one cut before its start just ends.
    damaged = "1 damaged frame(s) skipped (" if decoder_fails(source) else ""
    assert len(warnings) == 1 and warnings[0].startswith(f"{source}: {damaged}")
    assert warnings[0].endswith(
        f"the video ended at frame 15 of 40 (truncated or damaged?); {out} holds the 15 frame(s) read"
    )


def test_a_damaged_frame_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.avi", frames=40, codec="mjpeg", audio=True)
    with av.open(str(whole)) as container:
        packet = [packet for packet in container.demux(video=0) if packet.size][15]
        start, size = packet.pos, packet.size
    data = bytearray(whole.read_bytes())
    data[start : start + size] = bytes(size)  # frame 15's data zeroed: it no longer decodes
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    warnings: list[str] = []
    assert stylize_video(damaged, out, invert, warn=warnings.append) == 39
    assert len(warnings) == 1 and warnings[0].startswith(f"{damaged}: 1 damaged frame(s) skipped (")
    assert "ended" not in warnings[0] and probe_video(out).has_audio
    # The frames after it keep their time: the skipped frame's slot stays empty, the previous frame showing on.
    source_times = frame_times(whole)
    assert np.allclose(frame_times(out), np.delete(source_times, 15) - source_times[0], atol=2e-3)


def test_whole_videos_give_no_warning(tmp_path: Path) -> None:
    sources = [make_video(tmp_path / "clip.mp4"), make_video(tmp_path / "clip.avi", audio=True, codec="mjpeg")]
    # AVI repeats a frame by storing nothing in its slot: declared 37 frames, of which 10 decode, yet whole.
    sparse = tmp_path / "sparse.avi"
    with av.open(str(sparse), "w") as container:
        stream = container.add_stream("mjpeg", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(pattern(index, 64, 48), format="rgb24")
            frame.pts = 4 * index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert probe_video(sparse).frames == 37
    warnings: list[str] = []
    for source in [*sources, sparse]:
        stylize_video(source, tmp_path / "out.mp4", identity, warn=warnings.append)
    assert warnings == []
    # The sparse one's frames keep their times (every fourth slot), so the video keeps its length.
    assert np.allclose(frame_times(tmp_path / "out.mp4"), np.arange(10) * 4 / 15, atol=2e-3)
    done: list[int] = []  # and its progress counts slots, ending at the 37 it declares, not at 10 frames
    stylize_video(sparse, tmp_path / "again.mp4", identity, batch_size=3, progress=done.append)
    assert done == [9, 21, 33, 37]


def test_pictures_that_begin_after_the_sound_keep_their_time(tmp_path: Path) -> None:
    source = make_video(tmp_path / "late.mp4", audio=True, first_frame=15)  # 15 frames/s: the pictures begin 1 s in
    out = tmp_path / "out.mp4"
    stylize_video(source, out, identity)
    times = frame_times(source)
    assert times[0] == pytest.approx(1.0, abs=2e-3) and np.allclose(frame_times(out), times, atol=2e-3)
    with av.open(str(source)) as before, av.open(str(out)) as after:
        starts = [float(c.streams.audio[0].start_time * c.streams.audio[0].time_base) for c in (before, after)]
    assert starts[1] == pytest.approx(starts[0], abs=2e-3)


def test_cli_writes_an_avi_with_a_microsecond_rate_into_a_folder(model: Path, tmp_path: Path, capsys) -> None:
    source = make_video(tmp_path / "clip.avi", fps=MICROSECOND_RATE, codec="mjpeg")
    status = main(["stylize", str(model), str(source), "-o", str(tmp_path / "out"), "--compile", "off"])
    captured = capsys.readouterr()
    assert status == 0 and "skipped" not in captured.err
    info = probe_video(tmp_path / "out" / "clip.avi")
    assert (info.width, info.height, info.frames) == (64, 48, FRAMES) and abs(info.fps / MICROSECOND_RATE - 1) < 1e-5


def test_cli_warns_of_a_truncated_video_and_keeps_it(model: Path, tmp_path: Path, capsys) -> None:
    """Not counted as failed: the output holds every frame the source has left, so running again cannot help."""
    source = cut(make_video(tmp_path / "whole.avi", frames=40, codec="mjpeg"), tmp_path / "cut.avi", 15, 0.0)
    out = tmp_path / "out.mp4"
    status = main(["stylize", str(model), str(source), "-o", str(out), "--compile", "off"])
    captured = capsys.readouterr()
    warning = f"warning: {source}: the video ended at frame 15 of 40 (truncated or damaged?); {out} holds the 15"
    assert status == 0 and f"{warning} frame(s) read" in captured.err.splitlines()
    assert "15 frame(s) in 1 video(s)" in captured.out and "; 0 failed;" in captured.out
    assert probe_video(out).frames == 15


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_tree_avi_keeps_its_rate(tmp_path: Path, suffix: str) -> None:
    tree = SHARED_VIDEOS / "tree.avi"
    if not tree.is_file():
        pytest.skip(needs_clip("tree.avi"))
    before = probe_video(tree)
    out = tmp_path / f"tree{suffix}"
    written = stylize_video(tree, out, invert, warn=pytest.fail)
    after = probe_video(out)
    # 68 of its 444 slots hold a frame (the others repeat the one before): an AVI counts every slot, an MP4 frames.
    assert (after.width, after.height, after.frames) == (
        before.width,
        before.height,
        444 if suffix == ".avi" else written,
    )
    assert abs(after.fps / before.fps - 1) < 1e-5
    # Each frame shows when it did in the source, so the video keeps its length (29.6 s), not 68 frames' worth.
    times, source_times = frame_times(out), frame_times(tree)
    assert written == len(source_times) == 68 and np.allclose(times, source_times - source_times[0], atol=2e-3)


def test_the_start_of_tree_avi_is_kept_with_a_warning(tmp_path: Path) -> None:
    tree = SHARED_VIDEOS / "tree.avi"
    if not tree.is_file():
        pytest.skip(needs_clip("tree.avi"))
    data = tree.read_bytes()
    source = tmp_path / "trunc.avi"
    source.write_bytes(data[: len(data) // 20])
    warnings: list[str] = []
    written = stylize_video(source, tmp_path / "out.mp4", identity, warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith(f"{source}: the video ended at frame ")
    assert warnings[0].endswith(
        f" of 444 (truncated or damaged?); {tmp_path / 'out.mp4'} holds the {written} frame(s) read"
    )
    assert 0 < written < 10 and probe_video(tmp_path / "out.mp4").frames == written


@pytest.mark.parametrize("image_format", ["GIF", "PNG"])
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_an_animation_named_as_a_video_keeps_every_frame_and_delay(
    tmp_path: Path, image_format: str, suffix: str
) -> None:
    source = animation(tmp_path / "clip.mp4", image_format)  # an animated GIF or APNG renamed .mp4
    out = tmp_path / f"out{suffix}"
    warnings: list[str] = []
    done: list[int] = []
    assert stylize_video(source, out, invert, warn=warnings.append, progress=done.append) == 3
    assert warnings == [] and done == [3]
    assert len(decode(out)) == 3 and probe_video(out).frames in (3, None)  # WebM does not record a count
    for got, color in zip(colors(out), COLORS, strict=True):
        assert np.abs(np.subtract(got, 255 - np.array(color))).max() < 8
    # Each frame shows when it did in the animation, and the last for its own delay: the video is as long.
    assert np.allclose(frame_times(out), [0, 0.03, 1.03], atol=2e-3)
    with av.open(str(out)) as container:
        assert container.duration / 1e6 == pytest.approx(sum(DELAYS) / 1000, abs=0.01)


def test_an_animation_written_as_avi_says_which_frames_it_drops(tmp_path: Path) -> None:
    """AVI has no timestamps, only slots at the rate FFmpeg guesses (2 frames/s), so one of the three is lost."""
    source = animation(tmp_path / "clip.gif")
    out = tmp_path / "out.avi"
    warnings: list[str] = []
    assert stylize_video(source, out, identity, warn=warnings.append) == 2
    assert len(decode(out)) == 2
    assert warnings == [
        f"{source}: 1 frame(s) dropped, each within 0.5 s of the one before; {out} holds 2 of the 3 frame(s) read; "
        "write .mp4 or .webm to keep every frame"
    ]


def test_an_undecodable_animated_webp_is_one_clear_error_or_whole(tmp_path: Path) -> None:
    """FFmpeg (8.1 included) cannot decode animated WebP: a size of 0x0 must not reach the encoder as its error."""
    source = animation(tmp_path / "clip.mp4", "WEBP")
    out = tmp_path / "out.mp4"
    try:
        written = stylize_video(source, out, identity)
    except VideoError as error:
        assert str(error) == f"{source}: cannot decode video (FFmpeg's webp decoder reads no picture)"
        assert not out.exists()
    else:
        assert written == len(decode(out)) == 3


def test_cli_stylizes_every_frame_of_a_gif_named_mp4(model: Path, tmp_path: Path, capsys) -> None:
    source = animation(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    status = main(["stylize", str(model), str(source), "-o", str(out), "--compile", "off"])
    captured = capsys.readouterr()
    assert status == 0 and "warning" not in captured.err and "3 frame(s) in 1 video(s)" in captured.out
    assert probe_video(out).frames == 3 and len(decode(out)) == 3
