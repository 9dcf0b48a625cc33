"""`stylenet.inference.video`: stylized videos keep size, frame rate, frame count and audio; bad paths fail clearly."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from stylenet.errors import StylenetError
from stylenet.inference import video, video_audio
from stylenet.inference.video import VIDEO_SUFFIXES, VideoError, VideoInfo, probe_video, stylize_video

av = pytest.importorskip("av", reason='needs the optional extra video: pip install "stylenet[video]"')

FPS = Fraction(15)
FRAMES = 12


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """Smooth colour ramps that move with `index`: easy on the codec, yet every frame differs."""
    y, x = np.mgrid[0:height, 0:width]
    red = 40 + 150 * x / max(width - 1, 1)
    green = 40 + 150 * y / max(height - 1, 1)
    blue = np.full_like(red, 40 + 12 * index)
    return np.clip(np.stack([red, green, blue], axis=-1) + 3 * index, 0, 255).astype(np.uint8)


def make_video(
    path: Path,
    width: int = 64,
    height: int = 48,
    fps: Fraction = FPS,
    frames: int = FRAMES,
    audio: bool = False,
    codec: str = "libx264",
    first_frame: int = 0,
) -> Path:
    """A video (H.264 unless `codec` says otherwise) written with PyAV in the container `path`'s suffix names,
    optionally with an AAC sine-wave track as long as the video; its pictures begin `first_frame` frames in."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        if codec == "mjpeg":
            video.pix_fmt = "yuvj420p"  # JPEG's full-range 4:2:0, the one MJPEG takes
        else:
            video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        sound = container.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(index, width, height), format="rgb24")
            frame.pts = first_frame + index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = int(44100 * frames / fps)
            wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)
            tone = av.AudioFrame.from_ndarray(wave[None].astype(np.float32), format="fltp", layout="mono")
            tone.sample_rate, tone.pts = 44100, 0
            container.mux(sound.encode(tone))
            container.mux(sound.encode())
    return path


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def identity(frames: list[np.ndarray]) -> list[np.ndarray]:
    return frames


def invert(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [255 - frame for frame in frames]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4")


@pytest.fixture
def clip_with_audio(tmp_path: Path) -> Path:
    return make_video(tmp_path / "sound.mp4", audio=True)


def test_probe_reports_size_rate_count_and_audio(clip: Path, clip_with_audio: Path) -> None:
    assert probe_video(clip) == VideoInfo(width=64, height=48, fps=FPS, frames=FRAMES, has_audio=False)
    assert probe_video(clip_with_audio) == VideoInfo(width=64, height=48, fps=FPS, frames=FRAMES, has_audio=True)
    assert ".mp4" in VIDEO_SUFFIXES and ".webm" in VIDEO_SUFFIXES


@pytest.mark.parametrize("process", [identity, invert])
def test_stylize_keeps_size_rate_and_frame_count(clip: Path, tmp_path: Path, process) -> None:
    out = tmp_path / "out.mp4"
    assert stylize_video(clip, out, process) == FRAMES
    assert probe_video(out) == VideoInfo(width=64, height=48, fps=FPS, frames=FRAMES, has_audio=False)
    expected = process([pattern(i, 64, 48) for i in range(FRAMES)])
    decoded = decode(out)
    assert len(decoded) == FRAMES
    for got, want in zip(decoded, expected, strict=True):
        # Lossy twice over (the source and the output), so compare averages, not pixels.
        assert np.abs(got.astype(float).mean((0, 1)) - want.astype(float).mean((0, 1))).max() < 6
        assert np.abs(got.astype(float) - want).mean() < 6


def test_inverted_frames_are_inverted(clip: Path, tmp_path: Path) -> None:
    stylize_video(clip, tmp_path / "same.mp4", identity)
    stylize_video(clip, tmp_path / "inverted.mp4", invert)
    for plain, inverted in zip(decode(tmp_path / "same.mp4"), decode(tmp_path / "inverted.mp4"), strict=True):
        assert np.abs((255 - plain.astype(float)) - inverted).mean() < 6


def frame_times(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.array([float(frame.time) for frame in container.decode(video=0)])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_audio_is_copied_when_the_container_takes_it(clip_with_audio: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    assert stylize_video(clip_with_audio, out, invert) == FRAMES
    info = probe_video(out)
    assert info.has_audio and info.fps == FPS and info.frames in (FRAMES, None)
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
        assert sum(frame.samples for frame in container.decode(audio=0)) >= 44100 * FRAMES / FPS
    # Evenly spaced frames: the audio's negative priming timestamps must not shift or pad the video.
    times = frame_times(out)
    assert len(times) == FRAMES and np.allclose(np.diff(times), float(1 / FPS), atol=2e-3)


def test_audio_is_reencoded_when_the_container_refuses_it(clip_with_audio: Path, tmp_path: Path) -> None:
    """WebM admits no AAC, so the track becomes Opus (or Vorbis) instead of being lost."""
    out = tmp_path / "out.webm"
    assert stylize_video(clip_with_audio, out, identity) == FRAMES
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] in (["opus"], ["libopus"], ["vorbis"])
        assert container.streams.video[0].average_rate == FPS
    assert probe_video(out).has_audio
    assert len(decode(out)) == FRAMES


def test_audio_is_dropped_when_nothing_can_write_it(
    clip_with_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebM refuses AAC; with no usable encoder either, the video is still written, silent."""
    monkeypatch.setitem(video_audio.AUDIO_ENCODERS, ".webm", ("no-such-encoder",))
    out = tmp_path / "out.webm"
    assert stylize_video(clip_with_audio, out, identity) == FRAMES
    assert not probe_video(out).has_audio
    assert len(decode(out)) == FRAMES


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi", ".webm"])
def test_odd_sizes_keep_their_resolution(tmp_path: Path, suffix: str) -> None:
    odd = make_video(tmp_path / "odd.mp4", width=63, height=47)
    out = tmp_path / f"out{suffix}"
    assert stylize_video(odd, out, invert, batch_size=8) == FRAMES
    info = probe_video(out)
    assert (info.width, info.height, info.fps) == (63, 47, FPS)
    assert info.frames in (FRAMES, None)  # WebM and MKV do not record a count
    decoded = decode(out)
    assert len(decoded) == FRAMES and decoded[0].shape == (47, 63, 3)
    assert np.abs(decoded[5].astype(float) - (255 - pattern(5, 63, 47))).mean() < 8


def test_fractional_frame_rate_is_kept(tmp_path: Path) -> None:
    ntsc = make_video(tmp_path / "ntsc.mp4", fps=Fraction(30000, 1001), frames=6)
    stylize_video(ntsc, tmp_path / "out.mp4", identity)
    assert probe_video(tmp_path / "out.mp4").fps == Fraction(30000, 1001)


def test_batches_and_progress(clip: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    done: list[int] = []

    def process(frames: list[np.ndarray]) -> list[np.ndarray]:
        seen.append(len(frames))
        assert all(f.dtype == np.uint8 and f.shape == (48, 64, 3) for f in frames)
        return frames

    assert stylize_video(clip, tmp_path / "out.mp4", process, batch_size=5, progress=done.append) == FRAMES
    assert seen == [5, 5, 2]
    assert done == [5, 10, 12]
    assert probe_video(tmp_path / "out.mp4").frames == FRAMES


def test_frames_that_change_size_part_way_are_scaled_to_the_videos_size(tmp_path: Path) -> None:
    # Two raw H.264 clips joined: the stream switches from 64x48 to 96x80 at its seventh frame.
    parts = [
        make_video(tmp_path / f"{name}.h264", width=w, height=h, frames=6)
        for name, w, h in (("a", 64, 48), ("b", 96, 80))
    ]
    joined = tmp_path / "joined.h264"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    notes: list[str] = []
    written = stylize_video(joined, tmp_path / "out.mp4", identity, batch_size=4, warn=notes.append)
    frames = decode(tmp_path / "out.mp4")
    assert written == len(frames) == 12 and all(frame.shape == (48, 64, 3) for frame in frames)
    assert len(notes) == 1 and "6 frame(s) differ in size from the video's 64x48" in notes[0] and "96x80" in notes[0]
    # The second clip's pictures, scaled: its first frame is the 96x80 pattern at 64x48, not another picture.
    expected = pattern(0, 64, 48).astype(float)
    assert np.abs(frames[6].astype(float) - expected).mean() < 6


def test_output_over_the_input_is_refused(clip: Path) -> None:
    before = clip.read_bytes()
    spelled_differently = clip.parent / "sub" / ".." / clip.name
    (clip.parent / "sub").mkdir()
    for dst in (clip, spelled_differently):
        with pytest.raises(VideoError, match="overwrite"):
            stylize_video(clip, dst, identity)
    assert clip.read_bytes() == before


def test_unreadable_input_names_the_file(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    for call in (lambda: probe_video(fake), lambda: stylize_video(fake, tmp_path / "out.mp4", identity)):
        with pytest.raises(VideoError, match="notes.mp4") as caught:
            call()
        assert isinstance(caught.value, StylenetError) and "\n" not in str(caught.value)
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(VideoError, match="missing.mp4"):
        probe_video(tmp_path / "missing.mp4")


def test_bad_process_output_leaves_no_file(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="frames"):
        stylize_video(clip, out, lambda frames: frames[:-1])
    with pytest.raises(ValueError, match="uint8"):
        stylize_video(clip, out, lambda frames: [f.astype(np.float32) for f in frames])
    assert not out.exists()


def test_a_failed_write_leaves_the_file_it_would_replace(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    out = tmp_path / "results" / "out.mp4"
    out.write_bytes(b"a previous result")
    with pytest.raises(ValueError, match="frames"):
        stylize_video(clip, out, lambda frames: frames[:-1])
    assert out.read_bytes() == b"a previous result" and [p.name for p in out.parent.iterdir()] == ["out.mp4"]
    assert stylize_video(clip, out, identity) == FRAMES  # replaced whole once written
    assert probe_video(out).frames == FRAMES and [p.name for p in out.parent.iterdir()] == ["out.mp4"]


def test_unknown_output_suffix_is_refused(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="out.gif"):
        stylize_video(clip, tmp_path / "out.gif", identity)


def test_missing_video_encoder_is_a_clear_error(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(video._VIDEO_ENCODERS, ".webm", ("no-such-encoder",))
    with pytest.raises(VideoError, match="out.webm.*no encoder"):
        stylize_video(clip, tmp_path / "out.webm", identity)
    assert not (tmp_path / "out.webm").exists()


def test_missing_pyav_says_how_to_install(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(VideoError, match="pip install"):
        probe_video(clip)


# --- scripts/make_demo_video.py --------------------------------------------------------------------


@pytest.fixture
def demo_script():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        import make_demo_video
    finally:
        sys.path.pop(0)
    return make_demo_video


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--seconds", "0"], "--seconds must be more than 0, not 0"),
        (["--seconds", "nan"], "--seconds must be more than 0, not nan"),
        (["--fps", "0"], "--fps must be from 1 to 240, not 0"),
        (["--seconds", "0.01", "--fps", "24"], "--seconds 0.01 at --fps 24 is less than one frame: give a longer clip"),
        (["--size", "640"], "--size 640: give WIDTHxHEIGHT in px, such as 640x360"),
        (["--size", "641x361"], "--size 641x361: H.264 needs even sides, such as 642x362"),
        (["--size", "5000x360"], "--size 5000x360: each side must be from 16 to 3840 px"),
    ],
)
def test_the_demo_clip_script_refuses_what_it_cannot_write_in_one_line(
    demo_script, argv: list[str], line: str, tmp_path: Path, capsys
) -> None:
    with pytest.raises(SystemExit) as stopped:
        demo_script.main([str(tmp_path / "demo.mp4"), *argv])
    assert stopped.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(f": error: {line}")
    assert list(tmp_path.iterdir()) == []


def test_the_demo_clip_script_refuses_a_name_it_cannot_write_or_would_replace(demo_script, tmp_path: Path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    kept = tmp_path / "kept.mp4"
    kept.write_bytes(b"an earlier clip")
    text, inside_file = tmp_path / "demo.txt", tmp_path / "file" / "demo.mp4"
    for output, line in (
        (text, f"{text}: name the clip with one of .mp4, .mkv, .mov (an H.264 video)"),
        (inside_file, f"{inside_file}: {tmp_path / 'file'} is a file, not a folder"),
        (kept, f"{kept} exists: pass --overwrite to replace it, or name another file"),
    ):
        with pytest.raises(SystemExit):
            demo_script.main([str(output)])
        assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: {line}")
    assert kept.read_bytes() == b"an earlier clip"


def test_the_demo_clip_pans_across_a_strip_as_wide_as_it_needs(demo_script, tmp_path: Path) -> None:
    out = tmp_path / "new" / "demo.mp4"  # a folder that is made
    assert demo_script.main([str(out), "--size", "400x16", "--seconds", "0.25", "--fps", "8"]) == 0
    frames = decode(out)
    strip = demo_script.photo_strip(400, 16)  # the photos at 16 px high span less than the frame: scaled up
    assert strip.shape[1] >= 800 and len(frames) == 2 and frames[0].shape == (16, 400, 3)
    for frame, left in zip(frames, (0, strip.shape[1] - 400), strict=True):
        assert np.abs(frame.astype(int) - strip[:, left : left + 400]).mean() < 12  # the strip, not garbage
    old = out.read_bytes()
    assert demo_script.main([str(out), "--size", "32x16", "--seconds", "0.25", "--fps", "4", "--overwrite"]) == 0
    assert out.read_bytes() != old and decode(out)[0].shape == (16, 32, 3)
    assert [p.name for p in out.parent.iterdir()] == ["demo.mp4"]
