"""Reading a source video: its frames in file order, where each belongs in time, and what went wrong on the way.

Frames are placed by their timestamps, not counted, so a source whose container leaves slots empty (an AVI
repeats a frame by storing nothing) keeps its length and its sync with the audio when written again. A frame
that does not decode is skipped and reading goes on; an error of the file itself (cut short, unreadable) ends
reading, keeping the frames read until then. `Timeline` places the frames and says, in one line, what was lost.
An animation (GIF, APNG) has no frame rate, only a delay per frame, so its frames keep their own times instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

# Demuxers whose frames each carry their own delay (a GIF's in hundredths of a second): the rate FFmpeg reports is a
# guess from the first few delays, and a grid at that rate can put two frames in one slot.
_ANIMATION_FORMATS = frozenset({"gif", "apng", "webp_pipe"})


def reason(error: Exception) -> str:
    """FFmpeg's own wording without the errno and file name PyAV prefixes, kept to one line."""
    return " ".join(str(getattr(error, "strerror", None) or error).split())


@dataclass(frozen=True)
class FrameSkipped:
    """A video packet that did not decode (a damaged frame); the frames after it still do."""

    reason: str


@dataclass(frozen=True)
class ReadingStopped:
    """The file could not be read further; what was decoded before is kept."""

    reason: str


def read_source(av: Any, source: Any, in_video: Any, in_audio: Any, copy_audio: bool) -> Iterator[Any]:
    """Decoded video frames and audio packets (copying) or frames (re-encoding), in file order, with a
    `FrameSkipped` for each video packet that fails to decode and a final `ReadingStopped` where the file does."""
    streams = [stream for stream in (in_video, in_audio) if stream is not None]
    try:
        for packet in source.demux(streams):
            if packet.stream.index == in_video.index:
                try:
                    yield from packet.decode()  # the demuxer's final empty packets flush the decoders
                except av.error.FFmpegError as error:
                    yield FrameSkipped(reason(error))
            elif not copy_audio:
                try:
                    yield from packet.decode()
                except av.error.FFmpegError:
                    pass  # a damaged audio packet: a moment of silence rather than the end of the video
            elif packet.dts is not None:  # copying needs no flush; empty packets cannot be muxed
                yield packet
    except av.error.FFmpegError as error:
        try:
            yield from in_video.decode(None)
        except av.error.FFmpegError:
            pass  # a decoder that failed may not drain; the frames already read are kept regardless
        yield ReadingStopped(reason(error))


def is_animation(source: Any, stream: Any) -> bool:
    """Whether `stream` is an animation (GIF, APNG, WebP) whose frames are timed one by one, not by a rate."""
    return bool(stream.time_base) and not _ANIMATION_FORMATS.isdisjoint(source.format.name.split(","))


class Timeline:
    """Where each decoded frame of `stream` goes in an output of `fps` frames a second, and what was lost.

    Time 0 is the first frame's time, or the audio's start where the audio (kept beside the frames, with its
    own timestamps) starts earlier: a video whose pictures begin a second into its sound keeps that second.
    An audio start below 0 (an encoder's priming samples) counts as 0. With `own_times` (an animation written
    where timestamps are stored), slots are ticks of the stream's time base, so each frame keeps its own time."""

    def __init__(self, stream: Any, fps: Fraction, audio_start: Fraction | None = None, own_times: bool = False):
        self.stream, self.fps, self.own_times = stream, fps, own_times
        self.tick = Fraction(stream.time_base) if own_times else 1 / fps  # the output's time base, in seconds
        self.audio_start = max(audio_start, Fraction(0)) if audio_start is not None else None
        self.origin: Fraction | None = None  # the output's time 0, in seconds of the source
        self.last_slot = -1
        self.read = 0  # frames placed or dropped
        self.last_pts: int | None = None  # how far into the source reading got
        self.dropped = 0
        self.skipped: list[str] = []  # why each damaged frame did not decode
        self.stopped: str | None = None  # why reading ended early, if it did

    def place(self, pts: int | None) -> int | None:
        """The slot (in frames of 1/fps since the first frame) of a frame shown at `pts`; None to drop it.

        By its time rather than its count: slots the source leaves empty stay empty. A frame that falls in
        the slot of the one before (a variable-rate source briefly faster than `fps`) is dropped, as FFmpeg's
        constant-rate output does, so the frames after it keep their time instead of running late for good."""
        self.last_pts = pts if pts is not None else self.last_pts
        self.read += 1
        if pts is None or not self.stream.time_base:
            slot = self.last_slot + max(1, round(1 / (self.fps * self.tick)))  # one frame of `fps` on
        else:
            time = pts * self.stream.time_base
            if self.origin is None:
                self.origin = time if self.audio_start is None else min(time, self.audio_start)
            slot = round((time - self.origin) / self.tick)
        if slot <= self.last_slot:
            self.dropped += 1
            return None
        self.last_slot = slot
        return slot

    @property
    def position(self) -> int:
        """How far reading got, in the units the container counts frames in: slots on the grid (an AVI's empty
        ones included), or frames where they keep their own times (a slot is then a tick, not a frame)."""
        return self.read if self.own_times else self.last_slot + 1

    def warning(self, written: int) -> str | None:
        """One line on what of the source is not in the output, or None where nothing is missing."""
        notes = []
        if self.skipped:
            notes.append(f"{len(self.skipped)} damaged frame(s) skipped ({self.skipped[0]})")
        if self.dropped:
            notes.append(f"{self.dropped} frame(s) dropped, each within {float(self.tick):.3g} s of the one before")
        expected = self._expected_frames()
        reached = self.position
        if self.stopped or (expected is not None and reached < expected - max(2, expected // 100)):
            counted = f" at frame {reached} of {expected}" if expected else f" at frame {reached}"
            at = f" at a read error ({self.stopped})" if self.stopped else ""
            notes.append(f"the video ended{counted}{at} (truncated or damaged?)")
        return "; ".join(notes) or None

    def _expected_frames(self) -> int | None:
        """The frame slots the container declares. An MP4 (or MOV) cut with an edit list still counts the frames
        it no longer shows, so there its duration, which the edit list shortens, counts where that is shorter;
        elsewhere a cut-off file's duration is FFmpeg's estimate from what is left. Container counts can be a
        frame or two off what decodes (muxers pad), hence the tolerance in `warning`."""
        declared = self.stream.frames or None
        edited = "mov" in self.stream.container.format.name.split(",")
        if declared and edited and self.stream.duration and self.stream.time_base:
            declared = min(declared, round(self.stream.duration * self.stream.time_base * self.fps))
        return declared
