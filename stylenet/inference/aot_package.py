"""Ahead-of-time compiled models: the fast network as an AOTInductor package that loads with no compilation.

An ONNX or torch.export file runs the plain fp32 layers, about as fast as the eager network. This
package holds what `torch.compile` makes of the fast path (bf16 where the CPU has native bf16,
channels-last, the fast layers, weights frozen and pre-packed for oneDNN) as machine code, so a
deployment gets the compiled speed without a compiler, a warm-up or stylenet's network code:
`torch._inductor.aoti_load_package(path)` runs it.

`precision="int8"` packages the int8 form of the compiled path (`stylenet.networks.int8_convs`: the
first layer's and the residual blocks' convolutions in int8, calibrated when exporting, the rest bf16),
the fastest file on CPUs with int8 matrix instructions (AVX512-VNNI, AMX-INT8; docs/performance.md).

The machine code is for CPUs with the instruction set of the one that exported it (recorded in the
metadata and checked at load). The graph takes one float32 (1, 3, H, W) image in [0, 1] with H and W
multiples of 4 (even sizes at both strides keep the fast layers free of size branches, which one graph
for every size cannot hold) and, for a network of several styles, their weights (S,). `load_aoti` pads
other sizes by reflection and crops the output back: the strides then fall on other pixels than the
eager network's at that exact size, so the texture is the same but may sit a pixel or two aside.
"""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylenet.atomic_write import write_through_memory
from stylenet.checkpoint import CheckpointError
from stylenet.errors import ConfigError
from stylenet.hardware import native_precision
from stylenet.inference.fast import INT8, FastRunner
from stylenet.inference.metadata import METADATA_KEY, describe, num_styles, parse
from stylenet.networks import int8_convs
from stylenet.networks.transformer import TransformerNet

SUFFIX = ".aoti.pt2"
MULTIPLE = 4
_METADATA_FILE = f"extra/{METADATA_KEY}.json"


class _Graph(nn.Module):
    """The fast network with the casts to and from its precision and layout inside the compiled graph."""

    def __init__(self, network: TransformerNet, precision: str):
        super().__init__()
        network = network.cpu().float()
        int8 = precision == INT8
        runner = FastRunner(network, torch.device("cpu"), "bf16" if int8 else precision)
        if int8:  # its int8 layers run where the network is traced, as under torch.compile
            int8_convs.quantize(runner.module, copy.deepcopy(network))
            _packed_weights_as_parameters(runner.module)
        self.network, self.dtype, self.layout = runner.module, runner.dtype, runner.layout

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=self.layout)
        return self.network(x, None if style is None else style.to(self.dtype)).float().contiguous()


def _packed_weights_as_parameters(network: nn.Module) -> None:
    """Makes each int8 layer's packed weights a (frozen) parameter instead of a buffer.

    AOTInductor copies every buffer of the exported program when compiling it (buffers may be changed
    in place, parameters may not), and oneDNN's packed weights, an opaque layout, cannot be copied
    element by element: the compilation failed. Parameters are taken as they are."""
    for layer in network.modules():
        if isinstance(layer, int8_convs.Int8Conv):
            layer.packed = nn.Parameter(layer._buffers.pop("packed"), requires_grad=False)


def instruction_set() -> str:
    """The vector instruction set Inductor compiles for on this CPU ("avx512", "avx2", ...)."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return str(pick_vec_isa()) or "none"


def _program(network: TransformerNet, precision: str) -> torch.export.ExportedProgram:
    height = MULTIPLE * torch.export.Dim("height_blocks", min=2, max=4096)
    width = MULTIPLE * torch.export.Dim("width_blocks", min=2, max=4096)
    # One image per call: with a dynamic batch too, Inductor's code ran a 1080p frame about a fifth
    # slower than torch.compile's; with batch 1 as fast (docs/performance.md).
    image = {2: height, 3: width}
    # A size that is no power of two, so that nothing about it is specialised into the graph.
    example: tuple[torch.Tensor, ...] = (torch.rand(1, 3, 68, 44),)
    shapes: tuple[Any, ...] = (image,)
    if network.num_styles > 1:
        example += (torch.full((network.num_styles,), 1.0 / network.num_styles),)
        shapes += (None,)
    with torch.no_grad():
        return torch.export.export(_Graph(network, precision), example, dynamic_shapes=shapes)


PRECISIONS = ("bf16", "fp32", INT8)


def check_precision(precision: str) -> None:
    """One ConfigError line where a package cannot be compiled in `precision` on this machine."""
    if precision not in PRECISIONS:
        raise ConfigError(f"compiled packages run in {', '.join(PRECISIONS)}, not {precision}")
    reason = int8_convs.available() if precision == INT8 else None
    if reason is not None:
        raise ConfigError(f"an int8 package cannot be compiled here: {reason}; use bf16 or fp32")


def check_compiler() -> None:
    """One ConfigError line where Inductor finds no working C++ compiler: found only after the network has
    been traced and lowered, it ends a package's export in a long traceback."""
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise ConfigError(
            "a compiled package needs a C++ compiler and none works here: install g++ (or clang++), "
            "or name one with the CXX environment variable; --format onnx and pt2 need none"
        ) from None


def export_aoti(
    network: TransformerNet, metadata: dict[str, Any], path: str | Path, precision: str | None = None
) -> Path:
    """Compiles `network` for this CPU into an AOTInductor package at `path`; `precision`: bf16, fp32 or int8
    (default: bf16 where this CPU has native bf16). Takes a minute or two and needs a C++ compiler."""
    precision = precision or native_precision("cpu")
    check_precision(precision)
    check_compiler()
    path = Path(path)
    if path.suffix != ".pt2":  # AOTInductor writes .pt2 archives only
        raise ConfigError(f"{path}: a compiled package is a .pt2 file; name it e.g. model{SUFFIX}")
    program = _program(network.eval(), precision)
    compiled = {"precision": precision, "instruction_set": instruction_set(), "torch": torch.__version__}

    def package(buffer: io.BytesIO) -> None:
        # Freezing folds the weights in as constants, which lets Inductor pre-pack them for oneDNN.
        torch._inductor.aoti_compile_and_package(program, package_path=buffer, inductor_configs={"freezing": True})
        with zipfile.ZipFile(buffer, "a") as archive:
            root = archive.namelist()[0].split("/", 1)[0]
            archive.writestr(f"{root}/{_METADATA_FILE}", describe({**metadata, "compiled": compiled}))

    write_through_memory(path, package)
    return path


def is_aoti_package(path: Path) -> bool:
    """Whether `path` is an AOTInductor package (a .pt2 archive holding compiled code) rather than a program."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/data/aotinductor/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def check_aoti_name(path: Path) -> None:
    """One CheckpointError line for a compiled package under a name other than `*.aoti.pt2`.

    Its machine code runs as soon as it is loaded, while a plain `.pt2` program is checked and cannot
    run code: the name is what tells a user which of the two a file is, so a package that calls itself
    a plain `.pt2` is not run."""
    if not path.name.lower().endswith(SUFFIX):
        raise CheckpointError(
            f"{path}: a compiled package (machine code, which runs when loaded) named as a plain .pt2 program; "
            f"not run. If you made or trust it, rename it to end in {SUFFIX}"
        )


def _metadata(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist() if name.endswith(f"/{_METADATA_FILE}")]
        if not names:
            raise CheckpointError(f"{path}: a compiled package, but not one exported by stylenet")
        return parse(archive.read(names[0]).decode())


def load_aoti(path: Path, device: torch.device, precision: str):
    """(runner, metadata) for the package at `path`, as `model._load_pt2` returns them: a runner for
    images, or for a network of several styles a function of the style weights giving one."""
    metadata = _metadata(path)
    compiled = metadata.get("compiled", {})
    if device.type != "cpu":
        raise ConfigError(f"{path}: a package compiled for CPUs; run it with --device cpu")
    if precision not in ("auto", compiled.get("precision")):
        raise ConfigError(f"{path} runs in {compiled.get('precision')}, the precision it was compiled in")
    here = instruction_set()
    if compiled.get("instruction_set") != here:
        raise CheckpointError(
            f"{path}: compiled for {compiled.get('instruction_set')} CPUs, this one has {here}: "
            "export the model again on this machine (stylenet export MODEL --format aoti)"
        )
    try:
        package = torch._inductor.aoti_load_package(str(path))
    except Exception as error:  # a damaged archive or a library built for another torch
        reason = (str(error).strip().splitlines() or [error.__class__.__name__])[0][:200]
        raise CheckpointError(f"{path}: not a loadable compiled package ({reason})") from error

    def run_with(weights: torch.Tensor | None):
        extra = () if weights is None else (weights.float().cpu(),)

        def run(images: torch.Tensor) -> torch.Tensor:
            height, width = images.shape[-2:]
            pads = (0, -width % MULTIPLE, 0, -height % MULTIPLE)
            images = F.pad(images.float(), pads, mode="reflect") if any(pads) else images.float()
            out = [package(image.unsqueeze(0), *extra) for image in images]  # one image per call
            return (out[0] if len(out) == 1 else torch.cat(out))[..., :height, :width]

        return run

    return (run_with(None) if num_styles(metadata) == 1 else run_with), metadata
