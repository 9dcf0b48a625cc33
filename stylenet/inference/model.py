"""`load_model`: any stylenet model file -> a `Stylizer` that maps images to stylised images.

Accepts the compact `.pt` checkpoint, a Lightning `.ckpt`, an exported `.onnx` or `.pt2`.
Never imports Lightning, Hydra or the loss network; checkpoints load with
`weights_only=True`, so a model file cannot run code when opened.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from stylenet.checkpoint import CheckpointError, load_inference_checkpoint
from stylenet.errors import ConfigError
from stylenet.hardware import native_precision
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.fast import DTYPES, FastRunner
from stylenet.inference.metadata import METADATA_KEY, parse
from stylenet.networks.transformer import TransformerNet

PRECISIONS = DTYPES
PRECISION_CHOICES = ("auto", *PRECISIONS)
MODEL_SUFFIXES = (".pt", ".ckpt", ".onnx", ".pt2")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    return torch.device(device)


class Stylizer:
    """Stylises (N, 3, H, W) float tensors in [0, 1]; returns float32 of the same shape and range."""

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        metadata: dict[str, Any],
        device: torch.device,
        precision: str,
        backend: str,
        network: TransformerNet | None = None,
    ):
        self._run = run
        self.network = network  # the eager module, where there is one (not for .onnx and .pt2)
        self.metadata = metadata
        self.device = device
        self.precision = precision
        self.backend = backend

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < 8:
            raise ValueError(f"images must be at least 8x8 pixels, got {tuple(images.shape[-2:])}")
        with torch.inference_mode():
            out = self._run(images.to(self.device, torch.float32))
        return out.float().clamp(0, 1).to(images.device)

    def eager(self) -> Stylizer:
        """The same model, uncompiled, with `network` set to the module that actually runs.

        Tiled inference patches that module's instance norms with whole-image statistics: with
        the fast path it is the cast copy (bf16 tiles), else the module as loaded.
        """
        if isinstance(self._run, FastRunner):
            runner = self._run.uncompiled()
            return Stylizer(runner, self.metadata, self.device, self.precision, "eager-fast", runner.module)
        return self

    def stylize_image(self, image: Image.Image) -> Image.Image:
        batch = to_tensor(image.convert("RGB")).unsqueeze(0)  # (1, 3, H, W)
        return Image.fromarray(to_array(self(batch)[0]))


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def _torch_runner(module: Callable[[torch.Tensor], torch.Tensor], device: torch.device, precision: str):
    def run(images: torch.Tensor) -> torch.Tensor:
        with _autocast(device, precision):
            return module(images)

    return run


def _load_lightning(path: Path) -> tuple[TransformerNet, dict[str, Any]]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({error.__class__.__name__})") from error
    if not isinstance(checkpoint, dict) or "stylenet" not in checkpoint:
        raise CheckpointError(f"{path}: a Lightning checkpoint, but not one written by stylenet training")
    info = checkpoint["stylenet"]
    network = TransformerNet(**info["model"])
    prefix = "network."
    network.load_state_dict({k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)})
    metadata = {"model": info["model"], "style": info["style"], "steps": checkpoint.get("global_step")}
    return network.eval(), metadata


def _load_pt2(path: Path, device: torch.device, precision: str):
    extra = {f"{METADATA_KEY}.json": ""}
    try:
        program = torch.export.load(path, extra_files=extra)
    except (RuntimeError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable .pt2 program ({error.__class__.__name__})") from error
    text = extra[f"{METADATA_KEY}.json"]
    if not text:
        raise CheckpointError(f"{path}: a torch.export program, but not one exported by stylenet")
    module = program.module().to(device)
    return _torch_runner(module, device, precision), parse(text)


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

    def run(images: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(None, {input_name: images.cpu().numpy()})
        return torch.from_numpy(out)

    return run, parse(text)


def load_model(path: str | Path, device: str = "cpu", precision: str = "auto", compile: bool = False) -> Stylizer:
    """A `Stylizer` for the model at `path` (.pt, .ckpt, .onnx or .pt2).

    `precision="auto"` runs .pt/.ckpt models in bf16 where the hardware has native bf16 (the
    fast path, within 35 dB PSNR of fp32) and exported models in fp32. `compile=True` compiles
    the fast path with torch.compile: tens of seconds once, then about twice as fast on CPU.
    """
    path = Path(path)
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, not {precision!r}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    target = resolve_device(device)
    suffix = path.suffix.lower()
    if precision == "auto":
        precision = native_precision(target.type) if suffix in (".pt", ".ckpt") else "fp32"
    if suffix == ".onnx":
        run, metadata = _load_onnx(path, target, precision)
        return Stylizer(run, metadata, target, precision, "onnxruntime")
    if suffix == ".pt2":
        run, metadata = _load_pt2(path, target, precision)
        return Stylizer(run, metadata, target, precision, "torch.export")
    if suffix == ".ckpt":
        network, metadata = _load_lightning(path)
    elif suffix == ".pt":
        network, metadata = load_inference_checkpoint(path)
    else:
        raise CheckpointError(f"{path}: unknown model type; expected one of {', '.join(MODEL_SUFFIXES)}")
    network = network.to(target)
    if precision == "fp32" and not compile:  # the reference path: plain eager fp32
        return Stylizer(_torch_runner(network, target, precision), metadata, target, precision, "eager", network)
    run = FastRunner(network, target, precision, compile=compile)
    return Stylizer(run, metadata, target, precision, "compiled" if compile else "eager-fast", network)


def load_network(path: str | Path) -> tuple[TransformerNet, dict[str, Any]]:
    """The eager network and metadata of a `.pt` or `.ckpt` file (what export starts from)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if path.suffix.lower() == ".ckpt":
        return _load_lightning(path)
    return load_inference_checkpoint(path)
