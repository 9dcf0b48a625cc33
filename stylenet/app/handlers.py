"""What the page's buttons run: read the upload, call the stylizer, hand back images and files.

Each handler is plain Python over the same functions `stylenet stylize` uses (reading and memory
planning, `process`, `run_video`, `stylize_frame`), so a page and the CLI give the same pixels and the
same one-line messages. Every `StylenetError` becomes a `gr.Error`: the page shows its line and the
server goes on to the next request.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from stylenet.app.catalog import Catalog
from stylenet.errors import StylenetError
from stylenet.imageio import to_array
from stylenet.inference.memory import LIMIT_NAME, SHRINK_HINT
from stylenet.inference.model import Stylizer
from stylenet.inference.runner import ImageJob, Settings, process, read_image, run_video
from stylenet.inference.webcam import stylize_frame

# Blend sliders on the page: enough for the shipped model's styles and most trained ones.
SLIDERS = 12
# Results stay on disk this long for the browser to fetch, then go with the next request.
KEEP_SECONDS = 3600
# A video's frames per batch, as `stylenet stylize --batch-size` defaults to.
VIDEO_BATCH = 4
# The memory lines name the CLI's options; a page user has the server's limit and the size control instead.
PAGE_WORDS = {
    LIMIT_NAME: "on this server",
    SHRINK_HINT: "set a smaller Output size (longest side, px)",
}


class Handlers:
    """The page's functions over one `Catalog`; results are written under a temporary folder of their own."""

    def __init__(self, catalog: Catalog, max_memory: int | None = None):
        self.catalog = catalog
        self.max_memory = max_memory
        self._workdir = tempfile.TemporaryDirectory(prefix="stylenet-app-")  # removed when the server exits

    def _error(self, error: Exception, upload: Path | None = None) -> gr.Error:
        """The error's line for the page, in the page's words; the server's paths (an upload's temporary
        file, a model file) show as file names."""
        message = str(error)
        if upload is not None:
            message = message.replace(str(upload), upload.name)
        for cli, page in PAGE_WORDS.items():
            message = message.replace(cli, page)
        return gr.Error(self.catalog.for_page(message))

    # --- choices ---------------------------------------------------------------------------------

    def slider_updates(self, name: str) -> list[dict[str, Any]]:
        """One update per blend slider: shown and labelled with a style of `name` (the first at 1), or hidden."""
        try:
            styles = self.catalog.styles(name)[:SLIDERS]
        except StylenetError as error:
            raise self._error(error) from None
        return [
            gr.update(visible=i < len(styles), label=styles[i] if i < len(styles) else "", value=float(i == 0))
            for i in range(SLIDERS)
        ]

    def _stylizer(self, name: str, weights: tuple[float, ...]) -> Stylizer:
        """The cached model called `name`, bound to the sliders' blend where it holds several styles."""
        stylizer = self.catalog.stylizer(name)
        styles = self.catalog.styles(name)[:SLIDERS]
        if not styles:
            return stylizer
        return stylizer.with_style({style: float(w or 0.0) for style, w in zip(styles, weights, strict=False)})

    def _settings(self, size: float | None, strength: float, keep_color: bool) -> Settings:
        """The page's controls as the CLI's settings: size 0 (or empty) keeps the input's own size."""
        if size is not None and not math.isfinite(size):
            raise gr.Error(f"output size must be a number of px (0 keeps the input's), not {size}")
        if size is not None and size != 0 and size < 8:
            raise gr.Error(f"output size must be at least 8 px on the longest side (0 keeps the input's), not {size}")
        if strength is None or not 0.0 <= strength <= 1.0:
            raise gr.Error(f"strength must be between 0 and 1, not {strength}")
        return Settings(
            size=int(size) if size else None,
            preserve_color=bool(keep_color),
            strength=float(strength),
            max_memory=self.max_memory,
        )

    def _folder(self) -> Path:
        """A new folder for one result, after removing the results older than `KEEP_SECONDS`."""
        root = Path(self._workdir.name)
        for old in root.iterdir():
            if old.stat().st_mtime < time.time() - KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        folder = root / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def _result_name(self, source: Path, name: str, suffix: str) -> str:
        model = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem)
        return f"{source.stem}_{model}{suffix}"

    # --- the three inputs ------------------------------------------------------------------------

    def photo(
        self, name: str, upload: str | None, size: float | None, strength: float, keep_color: bool, *weights: float
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(the photo as stylized from, the stylized photo, a full-resolution PNG of it to download)."""
        if not upload:
            raise gr.Error("upload a photo first")
        source = Path(upload)
        settings = self._settings(size, strength, keep_color)
        try:
            stylizer = self._stylizer(name, weights)
            image, plan = read_image(stylizer, source, settings)  # memory planned from the header, as in the CLI
            out = process(stylizer, image.unsqueeze(0), settings, plan.tile)[0]
        except (StylenetError, OSError) as error:
            raise self._error(error, source) from None
        result = to_array(out)
        target = self._folder() / self._result_name(source, name, ".png")
        Image.fromarray(result).save(target)
        return to_array(image), result, str(target)

    def video(
        self,
        name: str,
        upload: str | None,
        size: float | None,
        strength: float,
        keep_color: bool,
        *weights: float,
        progress: Callable[..., Any] | None = None,
    ) -> str:
        """The stylized video's path; `progress` is a `gr.Progress` (called with (frames done, frame count))."""
        if not upload:
            raise gr.Error("upload a video first")
        source = Path(upload)
        settings = self._settings(size, strength, keep_color)
        settings = Settings(**{**settings.__dict__, "batch_size": VIDEO_BATCH})
        target = self._folder() / self._result_name(source, name, ".mp4")

        def report(done: int, total: int | None) -> None:
            if progress is not None:
                progress((done, total), desc="stylizing", unit="frames")

        def warn(message: str) -> None:  # a damaged or cut-off upload: the page says what is missing
            gr.Warning(message.replace(str(source), source.name).replace(str(target), target.name))

        try:
            run_video(self._stylizer(name, weights), ImageJob(source, target), settings, progress=report, warn=warn)
        except (StylenetError, OSError) as error:
            raise self._error(error, source) from None
        return str(target)

    def webcam(
        self, frame: np.ndarray | None, name: str, size: float | None, strength: float, keep_color: bool, *weights
    ) -> np.ndarray | None:
        """One streamed camera frame (uint8 RGB) stylized; None before the camera sends anything."""
        if frame is None:
            return None
        settings = self._settings(size, strength, keep_color)
        try:
            return stylize_frame(self._stylizer(name, weights), _rgb(frame), settings)
        except StylenetError as error:
            raise self._error(error) from None


def _rgb(frame: np.ndarray) -> np.ndarray:
    """A camera frame as (H, W, 3): a grey one (with or without alpha) repeated, an alpha channel dropped."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 2, 3, 4):
        raise gr.Error(f"the webcam sent a frame of shape {frame.shape}, not an image: restart it")
    if frame.shape[-1] <= 2:
        frame = np.repeat(frame[..., :1], 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3])
