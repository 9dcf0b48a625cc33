"""Tables of docs/multistyle.md from `stylenet evaluate` reports (report.json).

    python scripts/multistyle_table.py quality MULTI_REPORT starry=SINGLE_REPORT wave=SINGLE_REPORT
    python scripts/multistyle_table.py added STYLE ADDED_REPORT SCRATCH_REPORT [SCRATCH_REPORT ...]

`quality`: each named style's mean losses on held-out photos in the network of several styles
(MULTI_REPORT) against its single-style network, with the ratio of totals.
`added`: a style added to a trained model (its row of ADDED_REPORT) against from-scratch
single-style networks of the same painting (e.g. checkpoints of one run at several steps).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TERMS = ("content_loss", "style_loss", "tv_loss", "total_loss")


def _report(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _style_mean(report: dict[str, Any], name: str) -> dict[str, float]:
    """The mean model losses of style `name` (a report of several styles) or of the report's one style."""
    if "styles" in report:
        for entry in report["styles"]:
            if entry["style"]["name"] == name:
                return entry["mean"]["model"]
        raise SystemExit(f"error: no style {name!r} in the report")
    return report["mean"]["model"]


def _model(path: str) -> str:
    return Path(_report(path)["settings"]["model"]).name


def _cells(losses: dict[str, float]) -> str:
    return " | ".join(f"{losses[t]:.4f}" for t in TERMS)


def quality(multi_path: str, singles: list[str]) -> str:
    multi = _report(multi_path)
    lines = [
        "| style | network | content | style | tv | total | total / single-style |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in singles:
        name, _, path = spec.partition("=")
        single, several = _style_mean(_report(path), name), _style_mean(multi, name)
        count = len(multi["styles"])
        lines.append(f"| {name} | single-style | {_cells(single)} | 1.00 |")
        ratio = several["total_loss"] / single["total_loss"]
        lines.append(f"| {name} | {count} styles | {_cells(several)} | **{ratio:.3f}** |")
    return "\n".join(lines)


def added(name: str, added_path: str, scratch_paths: list[str]) -> str:
    new = _style_mean(_report(added_path), name)
    lines = [
        "| model | content | style | tv | total | added / this |",
        "|---|---|---|---|---|---|",
        f"| added to a trained model (norms only): {_model(added_path)} | {_cells(new)} | 1.00 |",
    ]
    for path in scratch_paths:
        report = _report(path)
        scratch = _style_mean(report, name)
        ratio = new["total_loss"] / scratch["total_loss"]
        lines.append(f"| from scratch: {_model(path)} | {_cells(scratch)} | **{ratio:.3f}** |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "quality":
        print(quality(argv[1], argv[2:]))
    elif len(argv) >= 4 and argv[0] == "added":
        print(added(argv[1], argv[2], argv[3:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
