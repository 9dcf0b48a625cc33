"""How closely a model's painting follows a photo moved by whole pixels.

    python scripts/shift_error.py MODEL [MODEL ...] [--size 256] [--shifts 1,2,3,4,8]

MODEL is a model file or a shipped name ("paintings": every shipped style; "wave": that one).
A network that only convolved would move its output with its input, pixel for pixel. The
transformation network samples its features on a grid four pixels apart (two stride-2
convolutions), so a move by a multiple of four finds the same samples and one by 1 to 3 pixels
does not: the painting is redrawn rather than moved, which is the flicker a slowly moving video
shows. Per model and style, the mean squared difference on [0, 1] RGB between the output for
scikit-image's astronaut (`--size` px square) moved left by each shift and the output for the
photo moved alike, away from the borders. Prints a Markdown table.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from stylenet import load_model
from stylenet.pretrained import resolve

MARGIN = 16  # px kept away from the borders, whose padding does not move with the picture


def _photo(size: int, reach: int) -> torch.Tensor:
    """The astronaut scaled to `size` + `reach` px square, its top `size` rows: (1, 3, size, size + reach), so
    that every shift up to `reach` px leaves a `size` px square to stylise."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    photo = F.interpolate(photo, size=(size + reach, size + reach), mode="bilinear", antialias=True)
    return photo[..., :size, :]


def shift_error(stylizer, photo: torch.Tensor, shift: int) -> float:
    size = photo.shape[-2]
    still = stylizer(photo[..., :size])
    moved = stylizer(photo[..., shift : size + shift])  # the picture moved left by `shift` px
    rows = slice(MARGIN, size - MARGIN)
    return float(
        (moved[..., rows, MARGIN : size - MARGIN - shift] - still[..., rows, MARGIN + shift : size - MARGIN])
        .pow(2)
        .mean()
    )


@torch.no_grad()  # as a decorator, so that a caller's grad mode is back after main()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--shifts", default="1,2,3,4,8")
    args = parser.parse_args()
    shifts = [int(value) for value in args.shifts.split(",")]
    photo = _photo(args.size, max(shifts))
    print("| model | style | " + " | ".join(f"{shift} px" for shift in shifts) + " |")
    print("|---|---|" + "---|" * len(shifts))
    for path in args.models:
        resolved = resolve(path, None)  # a shipped style's name ("wave") is that style alone
        model = load_model(resolved.path, device="cpu", precision="fp32")
        for style in model.styles if resolved.style is None else [resolved.style]:
            stylizer = model.with_style(style)
            errors = [shift_error(stylizer, photo, shift) for shift in shifts]
            print(f"| {path} | {style} | " + " | ".join(f"{error:.5f}" for error in errors) + " |")


if __name__ == "__main__":
    main()
