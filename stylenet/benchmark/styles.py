"""The multi-style rows: one network as a single-style model and holding several styles, timed alike.

`load_model` runs a chosen style or blend of a multi-style model as a single-style network with
the chosen norm rows baked in (`stylenet.networks.style_rows`), so choosing should cost nothing
per frame. These rows check that on the path `stylenet stylize` takes (`load_model` at the
device's default precision, uncompiled, untiled): the single-style model, the multi-style one
in one of its styles (the last: its rows differ from the single-style model's) and in an equal
blend of all, each multi-style row given as a ratio against the single-style row of the same
size and memory setting.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from stylenet.benchmark import BenchmarkError
from stylenet.benchmark.backends import STYLIZER_PREFIX as PREFIX

SINGLE = f"{PREFIX}1-style"


def style_variants(num_styles: int) -> tuple[str, str, str]:
    """The rows' names: the single-style model, one style of `num_styles`, a blend of them all."""
    return SINGLE, f"{PREFIX}{num_styles}-styles", f"{PREFIX}{num_styles}-blend"


def single_style(network: Any, metadata: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`network` as a single-style network (its first style, where it holds several) and metadata to match."""
    import torch

    from stylenet.checkpoint import styles_of
    from stylenet.networks.style_rows import bake_style

    if network.num_styles == 1:
        return network, metadata
    first = styles_of(metadata)[:1]
    described = {k: v for k, v in metadata.items() if k not in ("styles", "model")} | {"style": first[0]}
    return bake_style(network, torch.eye(network.num_styles)[0]).eval(), described


def _grown(network: Any, num_styles: int) -> Any:
    """`network` (one style) holding `num_styles`: its own row first, then rows drawn near it, so styles differ."""
    import torch

    from stylenet.networks.style_rows import append_style, norm_parameters

    generator = torch.Generator().manual_seed(0)
    grown = network
    for _ in range(num_styles - 1):
        other = copy.deepcopy(network)
        with torch.no_grad():
            for parameter in norm_parameters(other):
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        grown = append_style(grown, other)
    return grown.eval()


def prepare_style_models(
    network: Any, metadata: dict[str, Any], num_styles: int, workdir: Path
) -> dict[str, dict[str, Any]]:
    """Writes the single- and the multi-style model files; {row name: what its measurement loads and chooses}.

    A model of several styles (`network` as loaded) is used as it is, with its first style as
    the single-style model; a single-style one grows to `num_styles` rows."""
    from stylenet.checkpoint import save_inference_checkpoint, style_metadata, styles_of

    if num_styles < 2:
        raise BenchmarkError(
            f"--styles must be at least 2 (the styles the multi-style network holds), not {num_styles}"
        )
    if network.num_styles > 1 and network.num_styles != num_styles:
        raise BenchmarkError(
            f"--styles {num_styles}: the model holds {network.num_styles} styles; pass --styles {network.num_styles}"
        )
    single, single_metadata = single_style(network, metadata)
    if network.num_styles > 1:
        several, names = network, [s["name"] for s in styles_of(metadata)]
    else:
        several, names = _grown(single, num_styles), [f"style{i}" for i in range(num_styles)]
    base = {k: v for k, v in single_metadata.items() if k not in ("style", "styles")}
    styles = [{"name": name} for name in names]
    single_path = save_inference_checkpoint(workdir / "single-style.pt", single, base | {"style": {"name": names[0]}})
    several_path = save_inference_checkpoint(workdir / "multi-style.pt", several, base | style_metadata(styles))
    blend = ",".join(f"{name}=1" for name in names)
    one, chosen, blended = style_variants(num_styles)
    return {
        one: {"model_file": str(single_path), "style": None},
        chosen: {"model_file": str(several_path), "style": names[-1]},
        blended: {"model_file": str(several_path), "style": blend},
    }


def stylizer_runner(spec: dict[str, Any], frame: Any, device: Any):
    """A zero-argument callable: the stylizer of `spec["model_file"]` in `spec["style"]` on `frame`."""
    from stylenet.inference.model import load_model

    stylizer = load_model(spec["model_file"], device=str(device))
    if spec.get("style"):
        stylizer = stylizer.with_style(spec["style"])
    frame = frame.to(device)
    return lambda: stylizer(frame, tile=None)  # tile=None: no memory reading per call, in any row


def with_single_style_ratio(row: dict[str, Any], single: dict[str, Any]) -> dict[str, Any]:
    """`row` with single-style ms / its ms (above 1 is faster), where both were measured."""
    if row.get("ms_per_frame") and single.get("ms_per_frame"):
        row["ratio_vs_single_style"] = single["ms_per_frame"] / row["ms_per_frame"]
    return row
