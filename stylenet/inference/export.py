"""Exporting the bare transformation network as a single-pass model: ONNX or torch.export (.pt2).

Both take any batch size and any H x W >= 8 (odd sizes included), carry the model's
metadata, and need no stylenet code to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylenet.errors import StylenetError
from stylenet.inference.metadata import METADATA_KEY, describe
from stylenet.networks.transformer import TransformerNet

FORMATS = ("onnx", "pt2")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}


class ExportError(StylenetError):
    """A model that could not be exported (missing exporter package, unsupported option)."""


def _dynamic_shapes() -> dict[str, dict[int, Any]]:
    return {
        "x": {
            0: torch.export.Dim("batch", min=1, max=1024),
            2: torch.export.Dim("height", min=8, max=16384),
            3: torch.export.Dim("width", min=8, max=16384),
        }
    }


def _example_input() -> tuple[torch.Tensor]:
    # Batch 2 and an odd size: a 1 or an even example would be specialised into the graph.
    return (torch.rand(2, 3, 67, 45),)


def _export_copy(network: TransformerNet) -> TransformerNet:
    """A CPU fp32 copy of `network` in eval mode with the plain layers; the caller's module is left as it was
    (device, dtype, mode, memory format). fast_ops' custom operators have no ONNX form and would tie .pt2
    files to stylenet."""
    plain = TransformerNet(**network.config.to_dict())
    plain.load_state_dict(network.state_dict())  # copies values into plain's own CPU fp32 tensors
    return plain.eval().use_fast_ops(False)


def check_exportable(upsample: str) -> None:
    """Raises `ExportError` for networks that cannot become a single-pass model of any size."""
    if upsample != "nearest":
        raise ExportError(
            "only model.upsample=nearest networks export: a transposed one crops its output back to the "
            "input size, which torch.export cannot express for every image size"
        )


def _exported_program(network: TransformerNet) -> torch.export.ExportedProgram:
    check_exportable(network.config.upsample)
    with torch.no_grad():
        return torch.export.export(_export_copy(network), _example_input(), dynamic_shapes=_dynamic_shapes())


def export_pt2(network: TransformerNet, metadata: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    program = _exported_program(network)
    torch.export.save(program, path, extra_files={f"{METADATA_KEY}.json": describe(metadata)})
    return path


def export_onnx(network: TransformerNet, metadata: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    try:
        import onnx
    except ImportError as error:
        raise ExportError('ONNX export needs onnx and onnxscript: pip install "stylenet[export]"') from error
    program = _exported_program(network)
    onnx_program = torch.onnx.export(
        program, input_names=["image"], output_names=["stylized"], dynamo=True, verbose=False
    )
    model = onnx_program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, describe(metadata)
    for key in ("style", "steps"):
        if key in metadata:
            extra = model.metadata_props.add()
            extra.key, extra.value = key, str(metadata[key]["name"] if key == "style" else metadata[key])
    onnx.save(model, str(path))
    return path


def export(network: TransformerNet, metadata: dict[str, Any], out: str | Path, fmt: str) -> Path:
    """Write `network` as `fmt` ("onnx" or "pt2") to `out` (a file path, or a folder)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)} or all, not {fmt!r}")
    metadata = {**metadata, "model": network.config.to_dict()}
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / f"{metadata.get('style', {}).get('name', 'model')}{SUFFIXES[fmt]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    return (export_onnx if fmt == "onnx" else export_pt2)(network, metadata, out)
