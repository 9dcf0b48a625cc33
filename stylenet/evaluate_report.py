"""`report.md` of `stylenet evaluate`: per-photo tables, and for a model of several styles one row per style.

Without the optimisation reference (`--gatys-steps 0`) the tables hold the model's own figures only.
"""

from __future__ import annotations

import json
from typing import Any

LOSS_KEYS = ("content_loss", "style_loss", "tv_loss", "total_loss")
WEIGHT_KEYS = ("content_weight", "style_weight", "tv_weight")


def _header(first: list[str], optimised: bool) -> list[str]:
    header = [*first, "model content", "model style", "model tv", "model total"]
    if optimised:
        header += ["optim content", "optim style", "optim tv", "optim total", "ratio (model/optim)", "steps to match"]
        return header + ["model s", "optim s", "speed-up", "SSIM model", "SSIM optim"]
    return header + ["model s", "SSIM model"]


def _cells(row: dict[str, Any], optimised: bool) -> list[str]:
    m = row["model"]
    cells = [f"{m[k]:.4g}" for k in LOSS_KEYS]
    if not optimised:
        return cells + [f"{m['seconds']:.4f}", f"{m['ssim']:.3f}"]
    o = row["optimisation"]
    cells += [f"{o[k]:.4g}" for k in LOSS_KEYS]
    cells += [f"{row['ratio_total']:.3f}", steps_to_match_text(row)]
    cells += [f"{m['seconds']:.4f}", f"{o['seconds']:.3f}", f"{row['speedup']:.1f}x"]
    return cells + [f"{m['ssim']:.3f}", f"{o['ssim']:.3f}"]


def steps_to_match_text(row: dict[str, Any]) -> str:
    """How many optimisation steps reach the model's loss: a count, "> N" where none of the N did, or
    "n/a" for results without the optimisation's history (reused from a report written before it was kept)."""
    if "steps_to_match" not in row:
        return "n/a"
    steps = row["steps_to_match"]
    return str(steps) if steps is not None else f"> {len(row['optimisation']['history']) - 1}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _photo_table(images: list[dict[str, Any]], mean: dict[str, Any], optimised: bool) -> list[str]:
    rows = [[row["photo"], *_cells(row, optimised)] for row in images]
    return _table(_header(["photo"], optimised), [*rows, ["**mean**", *_cells(mean, optimised)]])


def _layer_table(mean: dict[str, Any], optimised: bool) -> list[str]:
    """Each style layer's relative Gram error (means over the photos), before any weight."""
    layers = mean["model"].get("style_layers")
    if not layers:  # a report written before the layers were recorded
        return []
    header = ["style layer", "model"] + (["optimisation", "model / optimisation"] if optimised else [])
    rows = []
    for name, value in layers.items():
        row = [name, f"{value:.4g}"]
        if optimised:
            reached = mean["optimisation"]["style_layers"][name]
            row += [f"{reached:.4g}", f"{value / reached:.2f}x" if reached > 0 else "n/a"]
        rows.append(row)
    intro = "Relative Gram error per style layer (before the style weight; the style term is their weighted sum):"
    return ["", intro, "", *_table(header, rows)]


def _common_lines(report: dict[str, Any]) -> list[str]:
    settings = report["settings"]
    optimisation = (
        f"{settings['method']}, {settings['gatys_steps']} steps, lr {settings['lr']}"
        if settings["gatys_steps"]
        else "not run (--gatys-steps 0): the model's own losses only"
    )
    if settings.get("reference"):
        optimisation += f", results reused from {settings['reference']}"
    lines = [
        f"- loss: {json.dumps(settings['loss'])}" + (" (project defaults)" if settings["loss_defaults_used"] else ""),
        f"- optimisation (Gatys et al. 2016): {optimisation}",
        f"- size {settings['size']} px, seed {settings['seed']}, device {settings['device']}",
        f"- photos: {_photo_count(report)} evaluated, {report['skipped_count']} skipped",
    ]
    if settings["gatys_steps"]:
        lines.append(
            "- steps to match: the fewest optimisation steps whose loss is at or below the model's "
            "(for a mean, the mean optimisation loss after each step against the mean model loss)"
        )
    return lines


def _photo_count(report: dict[str, Any]) -> int:
    return len(report["images"]) if "images" in report else len(report["photos"])


def _describe(style: dict[str, Any]) -> str:
    return f"{style['name']} ({style['image']}, size {style['size']})"


def markdown(report: dict[str, Any]) -> str:
    """The Markdown report of `evaluate`'s result: one style, or a row per style then a table per style."""
    settings = report["settings"]
    optimised = bool(settings["gatys_steps"])
    if "styles" not in report:
        lines = [f"# Evaluation of `{settings['model']}`", "", f"- style: {_describe(settings['style'])}"]
        lines += [*_common_lines(report), "", *_photo_table(report["images"], report["mean"], optimised)]
        lines += _layer_table(report["mean"], optimised)
        return "\n".join([*lines, "", *[f"- {note}" for note in report["notes"]], ""])
    styles = report["styles"]
    with_optimised = optimised and not settings.get("reference")  # a reused optimisation has no images here
    grid = "the photos, then per style in the order above " + (
        "optimisation and model" if with_optimised else "the model"
    )
    lines = [f"# Evaluation of `{settings['model']}` ({len(styles)} of its styles)", ""]
    lines += [f"- styles: {'; '.join(_describe(s['style']) for s in styles)}", *_common_lines(report)]
    lines += [
        "- each style is scored on its own loss: the loss above with its painting, size and weights (below)",
        f"- grid.png rows: {grid}",
        "",
        "## Per style (means over the photos)",
        "",
    ]
    rows = [
        [s["style"]["name"], *(f"{s['loss'][k]:g}" for k in WEIGHT_KEYS), *_cells(s["mean"], optimised)] for s in styles
    ]
    rows.append(["**mean**", "", "", "", *_cells(report["mean"], optimised)])
    lines += _table(_header(["style", "content weight", "style weight", "tv weight"], optimised), rows)
    for style in styles:
        lines += ["", f"## {style['style']['name']}", "", *_photo_table(style["images"], style["mean"], optimised)]
        lines += _layer_table(style["mean"], optimised)
    return "\n".join([*lines, "", *[f"- {note}" for note in report["notes"]], ""])
