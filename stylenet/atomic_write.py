"""Files written whole or not at all: a failed write never leaves a truncated file, nor loses the one it replaces."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to, with its suffix (writers choose their format by it): it
    replaces `target` when the block ends without an error, and is removed when it does not."""
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
