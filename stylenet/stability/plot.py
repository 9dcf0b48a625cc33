"""A line chart of per-frame errors as a PNG, drawn with Pillow (no plotting library to install)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

_COLORS = [(90, 90, 90), (214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189)]
_WIDTH, _HEIGHT, _MARGIN = 900, 360, 60


def line_chart(series: dict[str, list[float]], title: str, path: Path) -> None:
    """One line per entry of `series` (values per frame pair), on shared axes starting at 0."""
    image = Image.new("RGB", (_WIDTH, _HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = _MARGIN, 30, _WIDTH - 20, _HEIGHT - 40
    longest = max((len(values) for values in series.values()), default=1)
    highest = max((max(values) for values in series.values() if values), default=1.0) or 1.0
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 8), title, fill="black")
    draw.text((left, bottom + 8), "0", fill="black")
    draw.text((right - 60, bottom + 8), f"frame {longest}", fill="black")
    draw.text((4, top), f"{highest:.3g}", fill="black")
    draw.text((4, bottom - 10), "0", fill="black")

    def point(index: int, value: float) -> tuple[float, float]:
        x = left + (right - left) * index / max(longest - 1, 1)
        return x, bottom - (bottom - top) * value / highest

    for number, (name, values) in enumerate(series.items()):
        color = _COLORS[number % len(_COLORS)]
        if len(values) > 1:
            draw.line([point(i, v) for i, v in enumerate(values)], fill=color, width=2)
        draw.text((left + 10 + 200 * number, bottom + 22), name, fill=color)
    image.save(path)
