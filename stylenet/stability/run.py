"""`stylenet evaluate MODEL --video CLIP...`: a model's warping errors on clips, beside a baseline's.

Writes `video_report.json`, `video_report.md` and one `video_<clip>.png` chart of the errors per frame.
Every style of a model of several is measured; the model's figure is the mean over its styles.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylenet.errors import ConfigError
from stylenet.inference.model import load_model
from stylenet.inference.runner import Settings, working_size
from stylenet.inference.stylizer import Stylizer
from stylenet.inference.video import VideoError, read_frames
from stylenet.pretrained import resolve
from stylenet.stability.measure import ExactPairs, clip_errors
from stylenet.stability.plot import line_chart
from stylenet.stability.report import markdown

# Frames of each clip paired with a known motion (spread over the clip) for the exact measure.
EXACT_FRAMES = 8


def _stylizers(models: dict[str, str | Path], style: str | None, device: str) -> dict[str, Stylizer]:
    """ "model/starry"-style labels -> the stylizer of that model in that style (every style, or `style`)."""
    stylizers = {}
    for which, path in models.items():
        resolved = resolve(path, style)  # a shipped style's name ("wave") is that style alone
        loaded = load_model(resolved.path, device=device, precision="fp32")  # the model itself, as evaluate scores it
        for name in loaded.styles if resolved.style is None else [resolved.style]:
            stylizers[f"{which}/{name}"] = loaded.with_style(name)  # an unknown name is one ConfigError line
    return stylizers


def _mean_by_model(values: dict[str, float], models: list[str]) -> dict[str, float]:
    """The mean over each model's styles of `values` keyed "model/style" (plus "input" as it is)."""
    means = {"input": values["input"]}
    for which in models:
        mine = [value for key, value in values.items() if key.startswith(f"{which}/")]
        means[which] = statistics.fmean(mine)
    return means


def fit_frame(frame: np.ndarray, size: int | None) -> np.ndarray:
    """`frame` scaled down (never up) to `size` px on its longest side, to the size `stylenet stylize --size`
    picks, or as it is. Lanczos on the 8-bit frame, so that the flow sees a sharp picture."""
    height, width = frame.shape[:2]
    if size is None or max(height, width) <= size:
        return frame
    target_height, target_width = working_size(height, width, Settings(size=size))
    return np.asarray(Image.fromarray(frame).resize((target_width, target_height), Image.Resampling.LANCZOS))


def _styles_mean(per_pair: dict[str, list[float]], which: str) -> list[float]:
    """Per frame pair, the mean error over the styles of model `which` ("model" or "baseline")."""
    mine = [values for key, values in per_pair.items() if key.startswith(f"{which}/")]
    return [statistics.fmean(pair) for pair in zip(*mine, strict=True)]


def _count_frames(clip: Path, frames: int, size: int | None) -> tuple[int, list[int]]:
    """How many of the first `frames` frames of `clip` decode, and the [width, height] they are measured at (fitted
    to `size`), keeping none of them; a clip that fails to decode part-way is measured on the frames before, with
    one line on stderr saying so (the report gives the count measured)."""
    count, measured = 0, [0, 0]
    try:
        for frame in read_frames(clip, frames):
            if count == 0:
                height, width = fit_frame(frame, size).shape[:2]
                measured = [width, height]
            count += 1
    except VideoError as error:
        print(f"warning: {error}; measured on the {count} frame(s) before it", file=sys.stderr)
    return count, measured


def _clip_frames(clip: Path, count: int, size: int | None) -> Iterator[np.ndarray]:
    """The first `count` frames of `clip` (all of which decode: `_count_frames`), fitted to `size`, one at a time."""
    reader = read_frames(clip, count)
    try:
        # islice asks for no frame past `count`: the reader would decode one more to see that it has reached its limit
        for frame in islice(reader, count):
            yield fit_frame(frame, size)
    finally:
        reader.close()


def evaluate_video(
    model: str | Path,
    clips: list[Path],
    out_dir: Path,
    baseline: str | Path | None = None,
    style: str | None = None,
    frames: int = 100,
    flow: float = 8.0,
    noise: float = 0.02,
    device: str = "cpu",
    size: int | None = None,
) -> dict[str, Any]:
    """Warping errors of `model` (and `baseline`) on the first `frames` frames of each clip, resized to `size`
    px on the longest side where larger (None: as they are); writes the report into `out_dir`."""
    if size is not None and size < 16:
        raise ConfigError(f"--video-size must be at least 16 px, not {size}")
    if frames < 2:
        raise ConfigError(f"--frames must be at least 2 (errors are between consecutive frames), not {frames}")
    for clip in clips:
        if not Path(clip).is_file():
            raise ConfigError(f"--video {clip}: no such file")
        if len(list(read_frames(clip, 2))) < 2:  # an unreadable clip found before the others are measured
            raise ConfigError(f"--video {clip}: fewer than 2 frames decode, so it has no warping error")
    models = {"model": model} | ({"baseline": baseline} if baseline is not None else {})
    stylizers = _stylizers(models, style, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "model": str(model),
        "baseline": None if baseline is None else str(baseline),
        "max_frames": frames,
        "video_size": size,
        "exact": {"flow_px": flow, "noise_std": noise, "frames_per_clip": EXACT_FRAMES},
        "clips": [],
    }
    for clip in clips:
        count, measured = _count_frames(Path(clip), frames, size)  # first: the exact frames spread over them all
        if count < 2:
            raise ConfigError(f"--video {clip}: {count} frame(s); the warping error needs at least 2")
        spread = list(range(0, count, max(count // EXACT_FRAMES, 1)))[:EXACT_FRAMES]
        exact_measure = ExactPairs(stylizers, flow, noise)  # fed the spread frames as they are stylised
        decoded = _clip_frames(Path(clip), count, size)
        per_pair = clip_errors(stylizers, decoded, exact=exact_measure, exact_at=set(spread))
        means = {name: statistics.fmean(values) for name, values in per_pair.items()}
        exact = exact_measure.means()
        chart = out_dir / f"video_{Path(clip).stem}.png"
        by_model = {"input": per_pair["input"]} | {which: _styles_mean(per_pair, which) for which in models}
        line_chart(by_model, f"{Path(clip).name}: warping error per frame (mean over styles)", chart)
        report["clips"].append(
            {
                "clip": Path(clip).name,
                "size": measured,
                "frames": count,
                "warping_error": means,
                "warping_error_by_model": _mean_by_model(means, list(models)),
                "exact_error": exact,
                "exact_error_by_model": _mean_by_model(exact, list(models)),
                "per_frame": per_pair,
                "chart": chart.name,
            }
        )
    (out_dir / "video_report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "video_report.md").write_text(markdown(report))
    return report
