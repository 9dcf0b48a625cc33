"""The markdown of a video stability report (see stylenet/stability/run.py)."""

from __future__ import annotations

from typing import Any


def _ratio(values: dict[str, float]) -> str:
    return f"{values['model'] / values['baseline']:.2f}x" if values.get("baseline") else ""


def markdown(report: dict[str, Any]) -> str:
    compared = report["baseline"] is not None
    exact = report["exact"]
    lines = [
        "# Video stability",
        "",
        f"Model: `{report['model']}`" + (f"; baseline: `{report['baseline']}`" if compared else ""),
        "",
        "Warping error: mean squared difference on [0, 1] RGB between each stylised frame and the previous one",
        "warped onto it by the optical flow of the input frames (OpenCV DIS, refined to the frames' full",
        "resolution), over pixels that pass the forward-backward occlusion test; `input` is the same error of",
        "the unstylised frames, the floor the flow allows. Exact: each of "
        f"{exact['frames_per_clip']} frames per clip paired with a copy moved by a known smooth random flow",
        f"(up to {exact['flow_px']:g} px) plus noise (std {exact['noise_std']:g}); no flow is estimated.",
        "",
        "| clip | frames | what | warping error | exact-pair error |",
        "|---|---|---|---|---|",
    ]
    for clip in report["clips"]:
        keys = list(clip["warping_error"])
        for key in keys:
            lines.append(
                f"| {clip['clip']} | {clip['frames']} | {key} | {clip['warping_error'][key]:.5f} "
                f"| {clip['exact_error'][key]:.5f} |"
            )
        for which in ("model", "baseline") if compared else ("model",):
            lines.append(
                f"| {clip['clip']} | {clip['frames']} | **{which}, mean of styles** "
                f"| **{clip['warping_error_by_model'][which]:.5f}** | **{clip['exact_error_by_model'][which]:.5f}** |"
            )
        if compared:
            lines.append(
                f"| {clip['clip']} | {clip['frames']} | **model / baseline** "
                f"| **{_ratio(clip['warping_error_by_model'])}** | **{_ratio(clip['exact_error_by_model'])}** |"
            )
    lines += ["", *[f"![{clip['clip']}]({clip['chart']})" for clip in report["clips"]], ""]
    return "\n".join(lines)
