"""Exporting the bare transformation network as a single-pass model: ONNX or torch.export (.pt2).

Both take any batch size and any H x W >= 8 (odd sizes included), carry the model's
metadata, and need no stylenet code to run. A network of several styles exports with the
style weights as a second input (float32, shape (S,)), so one file runs every style and blend;
`style=` bakes one choice in instead, giving a plain single-style model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylenet.atomic_write import write_through_memory
from stylenet.checkpoint import styles_of
from stylenet.errors import StylenetError
from stylenet.inference.aot_package import SUFFIX as AOTI_SUFFIX
from stylenet.inference.aot_package import export_aoti
from stylenet.inference.metadata import METADATA_KEY, describe
from stylenet.inference.style_choice import StyleChoice, choice_of, style_weights
from stylenet.inference.stylizer import style_names
from stylenet.networks.style_rows import bake_style
from stylenet.networks.transformer import TransformerNet

FORMATS = ("onnx", "pt2", "aoti")
PORTABLE = ("onnx", "pt2")  # what --format all writes: files that run on any machine
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "aoti": AOTI_SUFFIX}


class ExportError(StylenetError):
    """A model that could not be exported (missing exporter package, unsupported option)."""


def _dynamic_shapes(num_styles: int) -> dict[str, dict[int, Any] | None]:
    image = {
        0: torch.export.Dim("batch", min=1, max=1024),
        2: torch.export.Dim("height", min=8, max=16384),
        3: torch.export.Dim("width", min=8, max=16384),
    }
    return {"x": image} if num_styles == 1 else {"x": image, "style": None}  # S is part of the weights' shape


def _example_input(num_styles: int) -> tuple[torch.Tensor, ...]:
    # Batch 2 and an odd size: a 1 or an even example would be specialised into the graph.
    image = torch.rand(2, 3, 67, 45)
    return (image,) if num_styles == 1 else (image, torch.full((num_styles,), 1.0 / num_styles))


def _export_copy(network: TransformerNet) -> TransformerNet:
    """A CPU fp32 copy of `network` in eval mode with the plain layers; the caller's module is left as it was
    (device, dtype, mode, memory format). fast_ops' custom operators have no ONNX form and would tie .pt2
    files to stylenet."""
    plain = TransformerNet(**network.config.to_dict())
    plain.load_state_dict(network.state_dict())  # copies values into plain's own CPU fp32 tensors
    return plain.eval().use_fast_ops(False)


def check_exportable(upsample: str) -> None:
    """Raises `ExportError` for networks that cannot become a single-pass model of any size."""
    if upsample == "transposed":
        raise ExportError(
            "only model.upsample=nearest or bilinear networks export: a transposed one crops its output back to "
            "the input size, which torch.export cannot express for every image size"
        )


def _exported_program(network: TransformerNet) -> torch.export.ExportedProgram:
    check_exportable(network.config.upsample)
    n = network.num_styles
    with torch.no_grad():
        return torch.export.export(_export_copy(network), _example_input(n), dynamic_shapes=_dynamic_shapes(n))


def choose_style(
    network: TransformerNet, metadata: dict[str, Any], style: StyleChoice
) -> tuple[TransformerNet, dict[str, Any]]:
    """`network` and `metadata` as they export for `style` (see `export`); one ConfigError line for a bad
    choice, before anything is written."""
    names = style_names(metadata)
    if network.num_styles > 1 and len(names) != network.num_styles:
        raise ExportError(
            f"the network holds {network.num_styles} styles but its metadata names {len(names)}: "
            "export a model file written by stylenet"
        )
    if style is None:
        return network, metadata
    weights = style_weights(style, names)  # ConfigError for unknown names and bad weights
    if network.num_styles == 1:  # its own name (or a "blend" of itself): exactly the model as it is
        return network, metadata
    choice = choice_of(weights, names)
    chosen = {name: round(float(w), 4) for name, w in zip(names, weights, strict=True) if w}
    single = dict(styles_of(metadata)[names.index(choice)]) if choice in names else {}
    described = {key: value for key, value in metadata.items() if key not in ("style", "styles")}
    described["style"] = {**single, "name": choice, "blend": chosen}
    return bake_style(network, weights), described


def file_stem(metadata: dict[str, Any]) -> str:
    """The default file name of an export: its style, "a+b+c" for several, "a-0.7_b-0.3" for a baked blend."""
    names = style_names(metadata)
    if not names:
        return "model"
    if len(names) > 1:
        return "+".join(names)
    return names[0].replace("=", "-").replace(",", "_")


def _fits(name: str, fmt: str) -> bool:
    """Whether `name` ends as `load_model` expects of a `fmt` file (a .pt2 that is not a .aoti.pt2, say)."""
    name = name.lower()
    aoti = name.endswith(SUFFIXES["aoti"])
    return aoti if fmt == "aoti" else name.endswith(SUFFIXES[fmt]) and not aoti


def export_targets(out: Path, formats: tuple[str, ...], stem: str, folder: bool = False) -> list[Path]:
    """The file each of `formats` is written to for `-o out`: in a folder (or a name without a suffix, or one
    given as a folder: `folder`, for `-o exp.v2/`), `<stem><suffix>`; else `out` itself, which must be one
    format's file. One ExportError line otherwise."""
    if folder or out.is_dir() or not out.suffix:
        return [out / f"{stem}{SUFFIXES[fmt]}" for fmt in formats]
    if len(formats) > 1:
        fits = [fmt for fmt in formats if _fits(out.name, fmt)]
        hint = f" or choose --format {fits[0]}" if fits else ""
        raise ExportError(
            f"-o {out} names one file, but --format all writes {' and '.join(SUFFIXES[f] for f in formats)} files; "
            f"name a folder{hint}"
        )
    if not _fits(out.name, formats[0]):
        suffix = SUFFIXES[formats[0]]
        raise ExportError(
            f"-o {out}: --format {formats[0]} writes a {suffix} file; end the name in {suffix}, or name a folder"
        )
    return [out]


def export_pt2(network: TransformerNet, metadata: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    program = _exported_program(network)
    extra = {f"{METADATA_KEY}.json": describe(metadata)}
    write_through_memory(path, lambda buffer: torch.export.save(program, buffer, extra_files=extra))
    return path


def _onnx_props(metadata: dict[str, Any]) -> dict[str, str]:
    """Plain-text copies of the metadata most tools want to show (the whole lies under "stylenet")."""
    props = {}
    if isinstance(metadata.get("style"), dict) and "name" in metadata["style"]:
        props["style"] = str(metadata["style"]["name"])
    if metadata.get("styles"):
        props["styles"] = ",".join(style_names(metadata))
    if "steps" in metadata:
        props["steps"] = str(metadata["steps"])
    return props


def export_onnx(network: TransformerNet, metadata: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    try:
        import onnx
    except ImportError as error:
        raise ExportError('ONNX export needs onnx and onnxscript: pip install "stylenet[export]"') from error
    program = _exported_program(network)
    inputs = ["image"] if network.num_styles == 1 else ["image", "style"]
    onnx_program = torch.onnx.export(program, input_names=inputs, output_names=["stylized"], dynamo=True, verbose=False)
    model = onnx_program.model_proto
    for key, value in {METADATA_KEY: describe(metadata), **_onnx_props(metadata)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def export(
    network: TransformerNet,
    metadata: dict[str, Any],
    out: str | Path,
    fmt: str,
    style: StyleChoice = None,
    precision: str | None = None,
) -> Path:
    """Write `network` as `fmt` ("onnx", "pt2" or "aoti": compiled for this CPU, `aot_package`) to `out`
    (a file path, or a folder).

    A network of several styles takes their weights (float32, (S,)) as a second input, unless `style`
    ("wave", "starry=0.7,wave=0.3" or {name: weight}) bakes that choice into a single-style model.
    `precision`: an "aoti" package's (default: bf16 where this CPU has native bf16); the others are fp32."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)} or all, not {fmt!r}")
    network, metadata = choose_style(network, metadata, style)
    metadata = {**metadata, "model": network.config.to_dict()}
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / f"{file_stem(metadata)}{SUFFIXES[fmt]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "aoti":
        return export_aoti(network, metadata, out, precision)
    return (export_onnx if fmt == "onnx" else export_pt2)(network, metadata, out)
