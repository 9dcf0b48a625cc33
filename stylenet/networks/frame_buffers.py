"""The largest activations of an eager frame, kept for the next frames of the same size.

At 1920x1080 the network's full-size and half-size activations are 133 and 66 MB in bf16,
larger than glibc's mmap ceiling (32 MiB): allocated fresh, each is a new mapping whose pages
the kernel faults in and zeroes on first touch, every frame, and then returns to the system.
Keeping them in the network (one full-size and one half-size buffer: the four activations of
those sizes have two lifetimes each that never overlap) spares repeated frames those faults
without a process-wide allocator setting.

Buffers are kept from the second frame of a size on, so a single image peaks exactly as before
(held through the frame, they stand beside the residual blocks' activations, which the
estimate in `stylenet.inference.memory` already covers). They are not kept while the process
reuses freed memory anyway (`stylenet.hardware.keep_freed_memory`), where they would only add
the cost of zeroing them. Between calls the memory stays held: at most these two buffers, for
the last size seen.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from stylenet import hardware
from stylenet.networks.fast_ops import layout_of

# glibc's largest mmap threshold: smaller blocks come from its heap, which reuses freed memory
# without faults, and keeping them only added the cost of zeroing them (512 px frames).
KEEP_BYTES = 32 << 20


class FrameBuffers:
    """Named output buffers for eager inference, lent to one frame at a time.

    A frame that finds them in use by another thread runs with fresh allocations instead
    (`lease` yields None), so concurrent calls stay correct. Copies start empty.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, Tensor] = {}
        self._last: dict[str, tuple] = {}  # what each name was asked for last time; what it keeps

    @contextmanager
    def lease(self) -> Iterator[FrameBuffers | None]:
        if hardware.keeping_freed_memory():
            self._kept.clear()
            yield None
            return
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self
        finally:
            self._lock.release()

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
        """An output of `shape` in `like`'s dtype, device and layout: the kept one where it fits,
        a new kept one on the second frame of this size in a row, else None (allocate as usual).
        None also below `KEEP_BYTES`."""
        if like.element_size() * math.prod(shape) < KEEP_BYTES:
            return None
        layout = layout_of(like)
        wanted = (tuple(shape), like.dtype, like.device, layout)
        if self._last.get(name) != wanted:
            self._kept.pop(name, None)  # the old size's memory goes back
            self._last[name] = wanted
            return None
        if name not in self._kept:
            self._kept[name] = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=layout)
        return self._kept[name]

    def clear(self) -> None:
        """Returns the kept memory (a size seen before is kept again from its next frame)."""
        with self._lock:
            self._kept.clear()

    def __deepcopy__(self, memo: dict) -> FrameBuffers:
        return FrameBuffers()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def carve(buffer: Tensor, count: int, shape: tuple[int, int, int, int]) -> list[Tensor] | None:
    """`count` tensors of `shape` laid end to end in `buffer`'s memory, in its dtype and layout;
    None where they do not fit. For a buffer whose own contents are dead meanwhile."""
    n, c, h, w = shape
    size = n * c * h * w
    if count * size > buffer.numel():
        return None
    flat = buffer.as_strided((buffer.numel(),), (1,))  # dense in its layout, so its memory in order
    channels_last = layout_of(buffer) == torch.channels_last
    pieces = []
    for index in range(count):
        piece = flat[index * size : (index + 1) * size]
        pieces.append(piece.view(n, h, w, c).permute(0, 3, 1, 2) if channels_last else piece.view(n, c, h, w))
    return pieces
