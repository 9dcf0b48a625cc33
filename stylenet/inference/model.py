"""`load_model`: any stylenet model file -> a `Stylizer` that maps images to stylised images.

Accepts the compact `.pt` checkpoint, a Lightning `.ckpt`, an exported `.onnx` or `.pt2`, or a
`.aoti.pt2` package compiled ahead of time.
Never imports Lightning, Hydra or the loss network; checkpoints load with
`weights_only=True`, and a .pt2 file is checked before torch opens it (`check_pt2`), so a model file
cannot run code when opened (a compiled package is machine code, to be trusted as such).
"""

from __future__ import annotations

import contextlib
import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stylenet.checkpoint import (
    CheckpointError,
    check_not_git_lfs_pointer,
    load_inference_checkpoint,
    load_lightning_checkpoint,
)
from stylenet.errors import ConfigError
from stylenet.hardware import native_precision
from stylenet.inference.aot_package import check_aoti_name, is_aoti_package, load_aoti
from stylenet.inference.fast import DTYPES, INT8, FastRunner
from stylenet.inference.memory import memory_budget
from stylenet.inference.metadata import METADATA_KEY, num_styles, parse
from stylenet.inference.pt2_check import check_pt2
from stylenet.inference.style_choice import StyleChoice, style_weights
from stylenet.inference.stylizer import (  # noqa: F401 (Stylizer, as_picture, check_tensor: imported from here too)
    Stylizer,
    as_picture,
    check_tensor,
    choice_key,
    style_names,
)
from stylenet.networks import int8_convs
from stylenet.networks.style_rows import bake_style
from stylenet.networks.transformer import TransformerNet

PRECISIONS = DTYPES
PRECISION_CHOICES = ("auto", *PRECISIONS, INT8)
MODEL_SUFFIXES = (".pt", ".ckpt", ".onnx", ".pt2")


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(device: str | torch.device, option: str = "device=") -> torch.device:
    """The device `device` names: auto (the GPU where there is one), cpu, cuda or cuda:N; anything else,
    or a GPU this machine does not have, is one ConfigError line, naming it as `option` spells it
    (`device=` for the Python API, `--device ` for the command line)."""
    name = str(device)
    if not _DEVICE.fullmatch(name):
        raise ConfigError(f"{option}{name}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{option}{name}: no CUDA GPU is available here; use {option}cpu")
    target = torch.device(name)
    if target.index is not None and target.index >= (count := torch.cuda.device_count()):
        raise ConfigError(f"{option}{name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return target


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def _torch_runner(module: Callable[[torch.Tensor], torch.Tensor], device: torch.device, precision: str):
    def run(images: torch.Tensor) -> torch.Tensor:
        with _autocast(device, precision):
            return module(images)

    return run


@contextlib.contextmanager
def _quiet(logger: str):
    """Holds back `logger`'s warnings: torch.export logs a traceback for a file it cannot read before raising."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _load_pt2(path: Path, device: torch.device, precision: str):
    checked = check_pt2(path)
    extra = {f"{METADATA_KEY}.json": ""}
    try:
        with _quiet("torch.export"):
            program = torch.export.load(checked, extra_files=extra)
    except (RuntimeError, zipfile.BadZipFile, KeyError, ValueError, AssertionError) as error:
        raise CheckpointError(f"{path}: not a readable .pt2 program ({error.__class__.__name__})") from error
    text = extra[f"{METADATA_KEY}.json"]
    if not text:
        raise CheckpointError(f"{path}: a torch.export program, but not one exported by stylenet")
    module = program.module().to(device)
    metadata = parse(text)
    if num_styles(metadata) == 1:
        return _torch_runner(module, device, precision), metadata

    def run_with(weights: torch.Tensor):  # the style weights are the program's second input
        return _torch_runner(lambda images: module(images, weights.to(images.device)), device, precision)

    return run_with, metadata


def _load_onnx(path: Path, device: torch.device, precision: str):
    if precision != "fp32":
        raise ConfigError("ONNX models run in fp32 here; use --precision fp32 or a .pt/.pt2 model")
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ConfigError('running .onnx models needs onnxruntime: pip install "stylenet[export]"') from error
    providers = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    try:
        session = ort.InferenceSession(str(path), providers=providers + ["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise CheckpointError(f"{path}: not a readable ONNX model ({error.__class__.__name__})") from error
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise CheckpointError(f"{path}: an ONNX model, but not one exported by stylenet")
    input_name = session.get_inputs()[0].name
    metadata = parse(text)

    def run_with(weights: torch.Tensor | None):
        extra = {} if weights is None else {session.get_inputs()[1].name: weights.numpy()}

        def run(images: torch.Tensor) -> torch.Tensor:
            (out,) = session.run(None, {input_name: images.cpu().numpy(), **extra})
            return torch.from_numpy(out)

        return run

    return (run_with(None) if num_styles(metadata) == 1 else run_with), metadata


def load_model(
    path: str | Path,
    device: str = "cpu",
    precision: str = "auto",
    compile: bool = False,
    max_memory: int | str | None = None,
    style: StyleChoice = None,
) -> Stylizer:
    """A `Stylizer` for the model at `path` (.pt, .ckpt, .onnx, .pt2 or a compiled .aoti.pt2), or of a
    shipped style.

    `path` that is not a file may name the shipped model's styles (`stylenet models`): "wave", a blend
    "starry=0.7,wave=0.3", or "paintings" (all of them, chosen with `style`).

    `style`: which of the model's styles to run, or a blend ("wave", "starry=0.7,wave=0.3" or
    {"starry": 0.7, "wave": 0.3}); default: its first. The names are in `load_model(path).styles`;
    a name the model does not hold is one ConfigError line that lists them. A single-style model
    takes its own name only.

    `precision="auto"` runs .pt/.ckpt models in bf16 where the hardware has native bf16 (the
    fast path, within 35 dB PSNR of fp32), exported models in fp32 and compiled packages in the precision
    they were compiled in (`stylenet.inference.aot_package`). `compile=True` compiles the fast path
    with torch.compile: tens of seconds once, then faster (1.25-1.4x on a CPU with AMX); on a CPU
    without memory reuse, bf16 images over about half a megapixel run uncompiled, where the compiled
    frame measured slower (`FastRunner.compiles`). `precision="int8"` (CPU, with `compile=True`)
    runs the first layer's and the residual blocks' convolutions in int8 and the rest in bf16
    (`stylenet.networks.int8_convs`): faster where the CPU has int8 matrix units or AVX512-VNNI, at
    every size; tiles (which run uncompiled) run in bf16.
    `max_memory` (bytes, or a size such as "8G") bounds what one call may allocate for the
    network; larger images are tiled (default: a share of the memory free at the call).
    """
    max_memory = memory_budget(max_memory)
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, not {precision!r}")
    if not isinstance(compile, bool):  # "off" is truthy: it would compile, the opposite of what it says
        raise ConfigError(f"compile must be True or False, not {compile!r}")
    path, style = _resolved(path, style)
    target = resolve_device(device)
    if precision == INT8 and not (path.suffix.lower() == ".pt2" and is_aoti_package(path)):
        _check_int8(path, target, compile)
    suffix = path.suffix.lower()
    if suffix == ".pt2" and is_aoti_package(path):  # runs in the precision it was compiled in
        check_aoti_name(path)
        check_pt2(path, compiled=True)
        run, metadata = load_aoti(path, target, precision)
        precision, backend = metadata["compiled"]["precision"], "aoti"
    elif suffix in (".onnx", ".pt2"):
        precision = "fp32" if precision == "auto" else precision
        loader, backend = (_load_onnx, "onnxruntime") if suffix == ".onnx" else (_load_pt2, "torch.export")
        run, metadata = loader(path, target, precision)
    elif precision == "auto":
        precision = native_precision(target.type)
    if suffix in (".onnx", ".pt2"):
        if num_styles(metadata) == 1:
            style_weights(style, style_names(metadata))  # its own name is the only choice: anything else is refused
            return Stylizer(run, metadata, target, precision, backend, max_memory=max_memory)
        return _several_styles(
            metadata,
            lambda weights: Stylizer(run(weights), metadata, target, precision, backend, max_memory=max_memory),
            style,
        )
    if suffix == ".ckpt":
        network, metadata = load_lightning_checkpoint(path)
    elif suffix == ".pt":
        network, metadata = load_inference_checkpoint(path)
    else:
        raise CheckpointError(f"{path}: unknown model type; expected one of {', '.join(MODEL_SUFFIXES)}")
    if network.num_styles == 1:
        style_weights(style, style_names(metadata))  # its own name is the only choice: anything else is refused
        return _network_stylizer(network.to(target), metadata, target, precision, compile, max_memory)
    # Each choice runs as a single-style network with the chosen rows baked in: as fast as one.
    return _several_styles(
        metadata,
        lambda weights: _network_stylizer(
            bake_style(network, weights).eval().to(target), metadata, target, precision, compile, max_memory
        ),
        style,
    )


def _check_int8(path: Path, device: torch.device, compile: bool) -> None:
    """One ConfigError line where `precision="int8"` cannot run, before any work."""
    if path.suffix.lower() in (".onnx", ".pt2"):
        raise ConfigError(
            "precision int8 runs .pt/.ckpt models, shipped styles and packages exported in int8 "
            "(stylenet export MODEL --format aoti --precision int8), not other exported files"
        )
    if device.type != "cpu":
        raise ConfigError(f"precision int8 runs on CPUs only, not {device}: use bf16 or fp16 there")
    if not compile:
        raise ConfigError("precision int8 runs only compiled: pass compile=True (the CLI's --compile on or auto)")
    reason = int8_convs.available()
    if reason is not None:
        raise ConfigError(f"precision int8 cannot run here: {reason}; use bf16 or fp32")


def _several_styles(
    metadata: dict[str, Any], restyle: Callable[[torch.Tensor], Stylizer], style: StyleChoice = None
) -> Stylizer:
    """A stylizer of the chosen style (default: the first) that `with_style` re-binds through `restyle(weights)`.

    The choice is checked before anything is built; every stylizer bound from it shares one cache."""
    weights = style_weights(style, style_names(metadata))
    chosen = restyle(weights)
    chosen._restyle, chosen.style_weights = restyle, weights
    chosen._by_style[choice_key(weights)] = chosen
    return chosen


def _network_stylizer(
    network: TransformerNet,
    metadata: dict[str, Any],
    target: torch.device,
    precision: str,
    compile: bool,
    max_memory: int | None,
) -> Stylizer:
    if precision == "fp32" and not compile:  # the reference path: plain eager fp32
        run = _torch_runner(network, target, precision)
        return Stylizer(run, metadata, target, precision, "eager", network, max_memory)
    run = FastRunner(network, target, precision, compile=compile)
    return Stylizer(run, metadata, target, precision, "compiled" if compile else "eager-fast", network, max_memory)


def _resolved(model: str | Path, style: StyleChoice) -> tuple[Path, StyleChoice]:
    """The file and style that a model argument means: a file as it is, else a shipped style (`stylenet.pretrained`)."""
    from stylenet.pretrained import resolve

    resolved = resolve(model, style)
    check_not_git_lfs_pointer(resolved.path)  # .onnx and .pt2 files too, before their runtimes' own errors
    return resolved.path, resolved.style


def load_network(path: str | Path) -> tuple[TransformerNet, dict[str, Any]]:
    """The eager network and metadata of a `.pt` or `.ckpt` file (what export starts from).

    A shipped style's name gives the shipped network with that style (or blend) baked in; "paintings" all of them."""
    path, style = _resolved(path, None)
    if path.suffix.lower() == ".ckpt":
        return load_lightning_checkpoint(path)
    if path.suffix.lower() in (".onnx", ".pt2"):  # an export holds a graph, not the network to rebuild
        raise CheckpointError(
            f"{path}: an exported model, a graph without the network it came from; "
            "give the trained model (.pt or .ckpt)"
        )
    network, metadata = load_inference_checkpoint(path)
    if style is None:
        return network, metadata
    from stylenet.inference.export import choose_style

    baked, described = choose_style(network, metadata, style)
    return baked.eval(), described
