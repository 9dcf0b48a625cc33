"""Stylizing videos frame by frame: decode to RGB, run a model on batches of frames, encode the result.

Built on PyAV (`pip install "stylenet[video]"`), imported only when a video is touched, so the rest of stylenet
works without it. The output keeps the source's resolution, frame rate, length and audio (`video_audio`).
Each frame is shown when it was in the source, on a grid of the source's frame rate (`video_source`): slots a
source leaves empty (an AVI repeats a frame by storing nothing) stay empty, so the video keeps its length and its
sync with the audio. An animation (GIF, APNG) has a delay per frame rather than a rate, so its frames keep their
own times and delays instead, in any container but AVI, which stores no timestamps. A rate whose exact time base
an encoder cannot store (MPEG-4 Part 2: 16 bits) is written as the nearest one it can, a few parts per million
off for AVI's microsecond rates (1000000/66667 becomes 15). A frame that does not decode is skipped, and a source
cut short keeps the frames read up to there: one warning line says what is missing, as it does for frames
dropped because they come too close after the one before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stylenet.atomic_write import replacing
from stylenet.errors import StylenetError
from stylenet.inference.video_audio import add_audio
from stylenet.inference.video_frame_size import StreamSize
from stylenet.inference.video_source import FrameSkipped, ReadingStopped, Timeline, is_animation, read_source, reason

log = logging.getLogger(__name__)

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
# Near-transparent quality: stylized frames are full of fine texture that default bit rates smear.
_VIDEO_OPTIONS = {
    "libx264": {"crf": "18"},
    "libvpx-vp9": {"crf": "30", "b": "0", "row-mt": "1", "cpu-used": "4"},  # b=0: constant quality, not capped
    "libvpx": {"crf": "10", "b": "4M"},  # VP8 needs a bit rate ceiling alongside crf
}
# Largest time base denominator an encoder accepts: MPEG-4 Part 2 stores it in 16 bits, so an AVI's microsecond
# rate such as 1000000/66667 (a 15 frames/s clip) must be rounded to one it can hold.
_MAX_TIME_BASE_DENOMINATOR = {"mpeg4": 65535}

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
            raise VideoError(f"{path}: cannot decode video ({reason(error)})") from error


def stylize_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    process: Process,
    batch_size: int = 4,
    progress: Callable[[int], Any] | None = None,
    warn: Callable[[str], Any] | None = None,
) -> int:
    """Write `dst` with every video frame of `src` passed through `process`; return the number of frames written.

    `process` gets lists of up to `batch_size` RGB uint8 arrays of shape (H, W, 3) and must return as many arrays
    of the same shape and dtype. `progress(frames_done)` is called after each batch, counting the source's frame
    slots up to the last frame written (an AVI's empty slots included, so a whole video ends at its frame count).
    The output codec follows the suffix of `dst` (H.264 for .mp4/.mov/.mkv/.m4v, MPEG-4 for .avi, VP9 for .webm).
    The video is written beside `dst` and renamed to it once complete, so a failure leaves no half-written file and
    any file at `dst` intact.

    A source that stops decoding (an error, or running out of data) clearly before the frame count its container
    declares, that has frames which do not decode, or frames too close together for the output's frame rate (a
    variable-rate video, an animation written as AVI), is not an error: `dst` keeps every frame it can, and `warn`
    (default: this module's logger) gets one line saying what is missing. Only a source with no decodable frame
    at all raises `VideoError`.
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
        animation = is_animation(source, in_video)
        own_times = animation and suffix != ".avi"  # an AVI's frames are slots of 1/fps: it stores no timestamps
        try:
            # AVI stores no timestamps: shifting all streams so the audio's priming samples start at zero (FFmpeg's
            # default) would make its muxer insert an empty video frame, so AVI keeps them negative instead.
            options = {"avoid_negative_ts": "disabled"} if suffix == ".avi" else {}
            with replacing(dst) as partial, av.open(str(partial), "w", options=options) as output:
                tick = in_video.time_base if own_times else None
                out_video = _add_video(av, output, encoder, in_video, fps, dst, tick)
                out_audio, copy_audio = add_audio(av, output, in_audio, suffix)
                written = 0
                batch: list[np.ndarray] = []
                slots: list[int] = []  # each batched frame's place in time (`Timeline.place`)
                audio_start = _start(in_audio) if out_audio is not None else None
                timeline = Timeline(in_video, fps, audio_start, own_times)
                resizer = StreamSize(out_video.width, out_video.height)
                durations: dict[int, int] = {}  # an animation's frame delays, by output pts

                def mux_video(packets: list[Any]) -> None:
                    for packet in packets:
                        # Encoders keep no frame durations, and a GIF's last frame (often a long pause) needs its own.
                        if packet.pts in durations:
                            packet.duration = durations.pop(packet.pts)
                        output.mux(packet)

                def flush() -> None:
                    nonlocal written
                    results = process(batch)
                    _check_results(batch, results)
                    for image, place in zip(results, slots, strict=True):
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                        # In the encoder's time base (1/fps, or an animation's own): the source's timing exactly.
                        frame.pts = place
                        mux_video(out_video.encode(frame))
                        written += 1
                    batch.clear()
                    slots.clear()
                    if progress is not None:
                        progress(timeline.position)  # in the source's frames, so the end is its frame count

                for item in read_source(av, source, in_video, in_audio if out_audio is not None else None, copy_audio):
                    if isinstance(item, av.VideoFrame):
                        place = timeline.place(item.pts)
                        if place is None:
                            continue
                        if own_times and item.duration:
                            durations[place] = item.duration  # in the source's time base, which is the output's
                        batch.append(resizer.pixels(item))
                        slots.append(place)
                        if len(batch) == batch_size:
                            flush()
                    elif isinstance(item, av.Packet):
                        item.stream = out_audio  # also rescales its timestamps to the output stream
                        output.mux(item)
                    elif isinstance(item, FrameSkipped):
                        timeline.skipped.append(item.reason)
                    elif isinstance(item, ReadingStopped):
                        timeline.stopped = item.reason
                    else:
                        output.mux(out_audio.encode(item))
                if batch:
                    flush()
                if written == 0:
                    why = timeline.stopped or (timeline.skipped[0] if timeline.skipped else None)
                    raise VideoError(f"{src}: " + (f"cannot decode video ({why})" if why else "no video frames"))
                mux_video(out_video.encode())  # drain frames the encoder still holds for look-ahead
                if out_audio is not None and not copy_audio:
                    output.mux(out_audio.encode())
        except av.error.FFmpegError as error:
            raise VideoError(f"{dst}: cannot write video ({reason(error)})") from error
        missing = timeline.warning(written)  # reads the source's stream, which PyAV 18.1.1 refuses once closed
    if missing:
        kept = f"{written} of the {written + timeline.dropped}" if timeline.dropped else f"the {written}"
        hint = "; write .mp4 or .webm to keep every frame" if animation and not own_times and timeline.dropped else ""
        (warn or log.warning)(f"{src}: {missing}; {dst} holds {kept} frame(s) read{hint}")
    if resizer.scaled:
        (warn or log.warning)(f"{src}: {resizer.note()}")
    return written


def _import_av(path: str | os.PathLike[str]) -> Any:
    try:
        import av
    except ImportError as error:
        raise VideoError(f'{path}: video needs PyAV, which is not installed: pip install "stylenet[video]"') from error
    return av


def _open_input(av: Any, path: Path) -> Any:
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: not a readable video ({reason(error)})") from error


def _video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    if not container.streams.video:
        raise VideoError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        # FFmpeg found no picture it could decode (an animated WebP, say); otherwise an encoder refuses "0x0 px".
        raise VideoError(f"{path}: cannot decode video (FFmpeg's {stream.codec_context.name} decoder reads no picture)")
    return stream


def _frame_rate(stream: Any, path: str | os.PathLike[str]) -> Fraction:
    # FFmpeg's guess: the base rate every timestamp falls on (what players show for a constant-rate video), or the
    # average where the base rate is a clock's tick rather than a frame rate. Not the average first: a video
    # whose frames leave some slots empty averages below the rate it plays at (`video_source.Timeline`).
    rate = stream.guessed_rate or stream.average_rate or stream.base_rate
    if not rate:
        raise VideoError(f"{path}: frame rate is unknown")
    return Fraction(rate)


def _start(stream: Any) -> Fraction | None:
    """When `stream` starts, in seconds; None where its container does not say."""
    if stream.start_time is None or not stream.time_base:
        return None
    return stream.start_time * stream.time_base


def _first_encoder(av: Any, names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            av.Codec(name, "w")
        except ValueError:  # av's UnknownCodecError: not compiled into this FFmpeg build
            continue
        return name
    return None


def _encoder_rate(encoder: str, fps: Fraction) -> Fraction:
    """`fps`, or the nearest rate whose time base (1 / rate) `encoder` can store."""
    limit = _MAX_TIME_BASE_DENOMINATOR.get(encoder)
    if limit is None or fps.numerator <= limit:
        return fps
    return 1 / (1 / fps).limit_denominator(limit)  # the time base's denominator is the rate's numerator


def _add_video(
    av: Any, output: Any, encoder: str, in_video: Any, fps: Fraction, dst: Path, tick: Fraction | None = None
) -> Any:
    """The output's video stream at `fps`, its timestamps counted in `tick` (default: 1/fps, one per frame)."""
    rate = _encoder_rate(encoder, fps)
    stream = output.add_stream(encoder, rate=rate, options=_VIDEO_OPTIONS.get(encoder, {}))
    if tick is not None:
        stream.codec_context.time_base = tick
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
    try:
        # Opened now rather than with the file's header, so that a refusal names the encoder and what it refused
        # instead of surfacing as FFmpeg's bare "Invalid argument".
        stream.codec_context.open()
    except av.error.FFmpegError as error:
        others = [suffix for suffix, names in _VIDEO_ENCODERS.items() if encoder not in names]
        raise VideoError(
            f"{dst}: the {encoder} encoder used for {dst.suffix.lower()} files refuses this video ({width}x{height} "
            f"px at {float(rate):.6g} frames/s: {reason(error)}); write it as {' or '.join(others[:2])} instead"
        ) from error
    return stream


def _check_results(batch: list[np.ndarray], results: list[np.ndarray]) -> None:
    # A wrong result would otherwise surface as an obscure encoder error, or silently change the frame count.
    if len(results) != len(batch):
        raise ValueError(f"process returned {len(results)} frames for a batch of {len(batch)}")
    for frame, result in zip(batch, results, strict=True):
        if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != frame.shape:
            got = f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result).__name__
            raise ValueError(f"process must return uint8 arrays of shape {frame.shape}, got {got}")
