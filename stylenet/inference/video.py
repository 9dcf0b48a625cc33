"""Stylizing videos frame by frame: decode to RGB, run a model on batches of frames, encode the result.

Built on PyAV (`pip install "stylenet[video]"`), imported only when a video is touched, so the rest of stylenet
works without it. The output keeps the source's resolution, frame rate and frame count. Its audio is copied as is
when the output container accepts the codec, re-encoded when it does not, and dropped (never an error) when neither
works. Frames are written at a constant rate (the source's average rate), so variable-frame-rate sources come out
evenly spaced.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stylenet.atomic_write import replacing
from stylenet.errors import StylenetError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})

# Encoders to try per output container, best first. H.264 plays everywhere; AVI cannot carry it well (no B-frame
# timestamps), so it gets MPEG-4 Part 2, and WebM only admits VP8/VP9.
_VIDEO_ENCODERS = {
    ".mp4": ("libx264",),
    ".mov": ("libx264",),
    ".mkv": ("libx264",),
    ".m4v": ("libx264",),
    ".avi": ("mpeg4",),
    ".webm": ("libvpx-vp9", "libvpx"),
}
# Encoders for audio that cannot be copied into the output container; WebM only admits Opus/Vorbis.
_AUDIO_ENCODERS = {
    ".mp4": ("aac",),
    ".mov": ("aac",),
    ".mkv": ("aac",),
    ".m4v": ("aac",),
    ".avi": ("libmp3lame", "mp2"),
    ".webm": ("libopus", "libvorbis"),
}
# Near-transparent quality: stylized frames are full of fine texture that default bit rates smear.
_VIDEO_OPTIONS = {
    "libx264": {"crf": "18"},
    "libvpx-vp9": {"crf": "30", "b": "0", "row-mt": "1", "cpu-used": "4"},  # b=0: constant quality, not capped
    "libvpx": {"crf": "10", "b": "4M"},  # VP8 needs a bit rate ceiling alongside crf
}

Process = Callable[[list[np.ndarray]], list[np.ndarray]]


class VideoError(StylenetError):
    """A video that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int | None  # None when the container does not record it (e.g. WebM, MKV)
    has_audio: bool


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, frame rate, frame count and audio presence of the first video stream in `path`, without decoding."""
    av = _import_av(path)
    with _open_input(av, Path(path)) as container:
        stream = _video_stream(container, path)
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=_frame_rate(stream, path),
            frames=stream.frames or None,
            has_audio=bool(container.streams.audio),
        )


def read_frames(path: str | os.PathLike[str], limit: int | None = None) -> Iterator[np.ndarray]:
    """The first `limit` (default: all) video frames of `path` as RGB uint8 arrays (H, W, 3), in order."""
    av = _import_av(path)
    with _open_input(av, Path(path)) as container:
        stream = _video_stream(container, path)
        try:
            for index, frame in enumerate(container.decode(stream)):
                if limit is not None and index >= limit:
                    return
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode video ({_reason(error)})") from error


def stylize_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    process: Process,
    batch_size: int = 4,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Write `dst` with every video frame of `src` passed through `process`; return the number of frames written.

    `process` gets lists of up to `batch_size` RGB uint8 arrays of shape (H, W, 3) and must return as many arrays
    of the same shape and dtype. `progress(frames_done)` is called after each batch. The output codec follows the
    suffix of `dst` (H.264 for .mp4/.mov/.mkv/.m4v, MPEG-4 for .avi, VP9 for .webm). The video is written beside
    `dst` and renamed to it once complete, so a failure leaves no half-written file and any file at `dst` intact.
    """
    src, dst = Path(src), Path(dst)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise VideoError(f"{dst}: output would overwrite the input video; choose another path")
    suffix = dst.suffix.lower()
    if suffix not in _VIDEO_ENCODERS:
        raise VideoError(f"{dst}: cannot write {suffix or 'suffix-less'} videos; use one of {sorted(VIDEO_SUFFIXES)}")
    av = _import_av(dst)
    encoder = _first_encoder(av, _VIDEO_ENCODERS[suffix])
    if encoder is None:
        raise VideoError(f"{dst}: this PyAV build has no encoder for {suffix} ({' or '.join(_VIDEO_ENCODERS[suffix])})")

    with _open_input(av, src) as source:
        in_video = _video_stream(source, src)
        fps = _frame_rate(in_video, src)
        in_video.thread_type = "AUTO"  # frame-parallel decoding; it is otherwise single-threaded
        in_audio = source.streams.audio[0] if source.streams.audio else None
        try:
            # AVI stores no timestamps: shifting all streams so the audio's priming samples start at zero (FFmpeg's
            # default) would make its muxer insert an empty video frame, so AVI keeps them negative instead.
            options = {"avoid_negative_ts": "disabled"} if suffix == ".avi" else {}
            with replacing(dst) as partial, av.open(str(partial), "w", options=options) as output:
                out_video = _add_video(av, output, encoder, in_video, fps)
                out_audio, copy_audio = _add_audio(av, output, in_audio, suffix)
                written = 0
                batch: list[np.ndarray] = []

                def flush() -> None:
                    nonlocal written
                    results = process(batch)
                    _check_results(batch, results)
                    for image in results:
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                        # Frames numbered in the encoder's 1/fps time base give exactly the source's frame rate.
                        frame.pts = written
                        output.mux(out_video.encode(frame))
                        written += 1
                    batch.clear()
                    if progress is not None:
                        progress(written)

                for item in _read(av, source, in_video, in_audio if out_audio is not None else None, copy_audio, src):
                    if isinstance(item, av.VideoFrame):
                        batch.append(item.to_ndarray(format="rgb24"))
                        if len(batch) == batch_size:
                            flush()
                    elif isinstance(item, av.Packet):
                        item.stream = out_audio  # also rescales its timestamps to the output stream
                        output.mux(item)
                    else:
                        output.mux(out_audio.encode(item))
                if batch:
                    flush()
                if written == 0:
                    raise VideoError(f"{src}: no video frames could be decoded")
                output.mux(out_video.encode())  # drain frames the encoder still holds for look-ahead
                if out_audio is not None and not copy_audio:
                    output.mux(out_audio.encode())
        except av.error.FFmpegError as error:
            raise VideoError(f"{dst}: cannot write video ({_reason(error)})") from error
    return written


def _import_av(path: str | os.PathLike[str]) -> Any:
    try:
        import av
    except ImportError as error:
        raise VideoError(f'{path}: video needs PyAV, which is not installed: pip install "stylenet[video]"') from error
    return av


def _reason(error: Exception) -> str:
    """FFmpeg's own wording without the errno and file name PyAV prefixes, kept to one line."""
    return " ".join(str(getattr(error, "strerror", None) or error).split())


def _open_input(av: Any, path: Path) -> Any:
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: not a readable video ({_reason(error)})") from error


def _video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    if not container.streams.video:
        raise VideoError(f"{path}: has no video stream")
    return container.streams.video[0]


def _frame_rate(stream: Any, path: str | os.PathLike[str]) -> Fraction:
    # average_rate is frames / duration, what players show; the others are fall-backs for containers that omit it.
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise VideoError(f"{path}: frame rate is unknown")
    return Fraction(rate)


def _first_encoder(av: Any, names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            av.Codec(name, "w")
        except ValueError:  # av's UnknownCodecError: not compiled into this FFmpeg build
            continue
        return name
    return None


def _add_video(av: Any, output: Any, encoder: str, in_video: Any, fps: Fraction) -> Any:
    stream = output.add_stream(encoder, rate=fps, options=_VIDEO_OPTIONS.get(encoder, {}))
    width, height = in_video.codec_context.width, in_video.codec_context.height
    stream.width, stream.height = width, height
    # 4:2:0 is what every player decodes, but x264 refuses it for odd sizes, so those keep full-resolution chroma
    # (4:4:4) rather than being padded or cropped. MPEG-4 and VP9 accept odd 4:2:0 sizes.
    odd = width % 2 or height % 2
    stream.pix_fmt = "yuv444p" if odd and encoder == "libx264" else "yuv420p"
    if encoder == "mpeg4":
        # Fixed quantiser 3, like `ffmpeg -q:v 3`: its default 200 kb/s turns textures into blocks.
        stream.codec_context.qscale = True
        stream.codec_context.global_quality = 3 * 118  # FF_QP2LAMBDA
    return stream


def _add_audio(av: Any, output: Any, in_audio: Any, suffix: str) -> tuple[Any, bool]:
    """The output's audio stream and whether packets are copied (True) or re-encoded; (None, False) drops audio."""
    if in_audio is None:
        return None, False
    attempts: list[tuple[Callable[[Any], Any], bool]] = []
    if hasattr(output, "add_stream_from_template"):  # PyAV 13+; older versions always re-encode
        attempts.append((lambda container: container.add_stream_from_template(in_audio), True))
    for name in _AUDIO_ENCODERS[suffix]:
        for layout in (in_audio.codec_context.layout.name, "stereo"):  # some encoders take no surround layouts
            attempts.append((functools.partial(_add_audio_encoder, av, name, in_audio, layout), False))
    for add, copy in attempts:
        if _accepted(av, output.format.name, add):
            return add(output), copy
    return None, False


def _add_audio_encoder(av: Any, name: str, in_audio: Any, layout: str, container: Any) -> Any:
    rates = av.Codec(name, "w").audio_rates
    rate = in_audio.codec_context.sample_rate
    stream = container.add_stream(name, rate=rate if not rates or rate in rates else max(rates))  # Opus: 48 kHz
    stream.layout = layout
    return stream


def _accepted(av: Any, format_name: str, add: Callable[[Any], Any]) -> bool:
    """Whether a `format_name` file takes the stream that `add` creates, tried on a throwaway file in memory.

    Muxers refuse codecs, rates and layouts only when writing the header (FFmpeg's own codec query says yes to
    Opus in .mov, which the muxer then rejects), and by then the real file would be lost along with its video.
    """
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as trial:
            add(trial)
            trial.start_encoding()
    except (av.error.FFmpegError, ValueError):  # ValueError: an unknown encoder or layout
        return False
    return True


def _read(av: Any, source: Any, in_video: Any, in_audio: Any, copy_audio: bool, src: Path) -> Iterator[Any]:
    """Decoded video frames and audio packets (copying) or frames (re-encoding), in file order; errors name `src`."""
    streams = [stream for stream in (in_video, in_audio) if stream is not None]
    try:
        for packet in source.demux(streams):
            if packet.stream.index == in_video.index or not copy_audio:
                yield from packet.decode()  # the demuxer's final empty packets flush the decoders
            elif packet.dts is not None:  # copying needs no flush; empty packets cannot be muxed
                yield packet
    except av.error.FFmpegError as error:
        raise VideoError(f"{src}: cannot decode video ({_reason(error)})") from error


def _check_results(batch: list[np.ndarray], results: list[np.ndarray]) -> None:
    # A wrong result would otherwise surface as an obscure encoder error, or silently change the frame count.
    if len(results) != len(batch):
        raise ValueError(f"process returned {len(results)} frames for a batch of {len(batch)}")
    for frame, result in zip(batch, results, strict=True):
        if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != frame.shape:
            got = f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result).__name__
            raise ValueError(f"process must return uint8 arrays of shape {frame.shape}, got {got}")
