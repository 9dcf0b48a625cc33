"""Tables of docs/multistyle.md from `stylenet evaluate` reports (report.json).

    python scripts/multistyle_table.py quality MULTI_REPORT starry=SINGLE_REPORT wave=SINGLE_REPORT
    python scripts/multistyle_table.py added STYLE ADDED_REPORT SCRATCH_REPORT [SCRATCH_REPORT ...]
    python scripts/multistyle_table.py kept BASE_REPORT GROWN_REPORT

`quality`: each named style's mean losses on held-out photos in the network of several styles
(MULTI_REPORT) against its single-style network, with the ratio of totals.
`added`: a style added to a trained model (its row of ADDED_REPORT) against from-scratch
single-style networks of the same painting (e.g. checkpoints of one run at several steps).
`kept`: each style of a model (BASE_REPORT) against the same style of the model a style was added to it
makes (GROWN_REPORT), as adding with every weight training (init_trains=all) moves the old styles.
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
        f"| added to a trained model: {_model(added_path)} | {_cells(new)} | 1.00 |",
    ]
    for path in scratch_paths:
        report = _report(path)
        scratch = _style_mean(report, name)
        ratio = new["total_loss"] / scratch["total_loss"]
        lines.append(f"| from scratch: {_model(path)} | {_cells(scratch)} | **{ratio:.3f}** |")
    return "\n".join(lines)


def kept(base_path: str, grown_path: str) -> str:
    base = _report(base_path)
    names = [entry["style"]["name"] for entry in base["styles"]] if "styles" in base else [base["style"]["name"]]
    lines = [
        "| style | model | content | style | tv | total | total / before |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for name in names:
        before, after = _style_mean(base, name), _style_mean(_report(grown_path), name)
        ratios.append(after["total_loss"] / before["total_loss"])
        lines.append(f"| {name} | before | {_cells(before)} | 1.00 |")
        lines.append(f"| {name} | with the added style | {_cells(after)} | **{ratios[-1]:.3f}** |")
    lines.append(f"| **mean of the ratios** | | | | | | **{sum(ratios) / len(ratios):.3f}** |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "quality":
        print(quality(argv[1], argv[2:]))
    elif len(argv) >= 4 and argv[0] == "added":
        print(added(argv[1], argv[2], argv[3:]))
    elif len(argv) == 3 and argv[0] == "kept":
        print(kept(argv[1], argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
