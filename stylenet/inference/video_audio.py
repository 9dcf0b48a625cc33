"""The source's audio in a stylized video: copied as is where the output container takes its codec,
re-encoded where it does not, and dropped (never an error) where neither works."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

# Encoders for audio that cannot be copied into the output container; WebM only admits Opus/Vorbis.
AUDIO_ENCODERS = {
    ".mp4": ("aac",),
    ".mov": ("aac",),
    ".mkv": ("aac",),
    ".m4v": ("aac",),
    ".avi": ("libmp3lame", "mp2"),
    ".webm": ("libopus", "libvorbis"),
}


def add_audio(av: Any, output: Any, in_audio: Any, suffix: str) -> tuple[Any, bool]:
    """The output's audio stream and whether packets are copied (True) or re-encoded; (None, False) drops audio."""
    if in_audio is None:
        return None, False
    attempts: list[tuple[Callable[[Any], Any], bool]] = []
    if hasattr(output, "add_stream_from_template"):  # PyAV 13+; older versions always re-encode
        attempts.append((lambda container: container.add_stream_from_template(in_audio), True))
    for name in AUDIO_ENCODERS[suffix]:
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
