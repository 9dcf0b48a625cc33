"""Rows of labelled pictures on one white sheet: the layout of the README's figures."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 36


def contact_sheet(rows: list[list[tuple[str, Image.Image]]]) -> Image.Image:
    """Each row's pictures side by side, each under its label; rows stacked top to bottom."""
    width = max(sum(tile.width for _, tile in row) for row in rows)
    height = sum(max(tile.height for _, tile in row) + LABEL_HEIGHT for row in rows)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=22)
    top = 0
    for row in rows:
        left = 0
        for label, tile in row:
            draw.text((left + 6, top + 6), label, fill="black", font=font)
            sheet.paste(tile, (left, top + LABEL_HEIGHT))
            left += tile.width
        top += max(tile.height for _, tile in row) + LABEL_HEIGHT
    return sheet
