"""Frames of a video brought to the size its stream declares."""

from __future__ import annotations

from typing import Any

import numpy as np


class StreamSize:
    """Frames at the size the stream declares: a stream may change size part-way (joined clips, a
    resolution switch), while the encoder, the memory plan and each batch take the declared one."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.scaled = 0
        self.first: tuple[int, int, int] | None = None  # (frame index, width, height) of the first one scaled
        self.seen = 0

    def pixels(self, frame: Any) -> np.ndarray:
        """The frame as RGB uint8 (H, W, 3) at the declared size, scaled there where it has another."""
        self.seen += 1
        if (frame.width, frame.height) == (self.width, self.height):
            return frame.to_ndarray(format="rgb24")
        if self.first is None:
            self.first = (self.seen, frame.width, frame.height)
        self.scaled += 1
        return frame.reformat(width=self.width, height=self.height, format="rgb24").to_ndarray()

    def note(self) -> str:
        index, width, height = self.first or (0, 0, 0)
        return (
            f"{self.scaled} frame(s) differ in size from the video's {self.width}x{self.height} (the first, frame "
            f"{index}, is {width}x{height}); they were scaled to {self.width}x{self.height}"
        )
