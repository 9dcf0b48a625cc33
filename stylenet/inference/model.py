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

import numpy as np
import torch
from PIL import Image

from stylenet.checkpoint import CheckpointError, load_inference_checkpoint, load_lightning_checkpoint, styles_of
from stylenet.errors import ConfigError
from stylenet.hardware import native_precision
from stylenet.imageio import open_rgb, to_array, to_rgb, to_tensor
from stylenet.inference.fast import DTYPES, FastRunner
from stylenet.inference.global_norm import whole_image_statistics
from stylenet.inference.memory import activation_bytes_per_pixel, choose_tile, memory_limit, parse_size
from stylenet.inference.metadata import METADATA_KEY, parse
from stylenet.inference.style_choice import StyleChoice, choice_of, style_weights
from stylenet.inference.tiling import stylize_tiled
from stylenet.networks.style_rows import bake_style
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
    """Stylizes images; `stylizer(x)` returns the same kind of image it is given.

    Takes float tensors in [0, 1], (N, 3, H, W) or (3, H, W), and returns float32 of that shape;
    Pillow images, uint8 numpy arrays (H, W, 3) and image paths come back as Pillow images (paths)
    or of their own kind. Where the activations of a whole image would not fit in `max_memory`
    bytes (default: a share of the free memory, `memory.memory_limit`), it tiles on its own.

    `styles` lists the names of the styles a model holds, in its order (one name for a single-style
    model). A model of several styles runs its first unless told otherwise: `stylizer(x, style="wave")`,
    `style="starry=0.7,wave=0.3"` (a blend; weights are relative) or `style={"starry": 0.7, "wave": 0.3}`;
    `stylizer.with_style(...)` is the same model bound to that choice (for video, tiling...), and
    `stylizer.style` says which choice a stylizer runs.
    """

    # Set by `load_model` for a model of several styles: a Stylizer for given weights (S,).
    _restyle: Callable[[torch.Tensor], Stylizer] | None = None

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        metadata: dict[str, Any],
        device: torch.device,
        precision: str,
        backend: str,
        network: TransformerNet | None = None,
        max_memory: int | None = None,
    ):
        self._run = run
        self.network = network  # the eager module, where there is one (not for .onnx and .pt2)
        self.metadata = metadata
        self.device = device
        self.precision = precision
        self._backend = backend
        self.max_memory = max_memory
        self.styles: list[str] = _names(metadata)
        self.style_weights = style_weights(None, self.styles)  # (S,): the choice this stylizer runs
        self._by_style: dict[tuple[float, ...], Stylizer] = {}

    @property
    def style(self) -> str | None:
        """The style or blend this stylizer runs, e.g. "wave" or "starry=0.7,wave=0.3"."""
        return choice_of(self.style_weights, self.styles) if self.styles else None

    def with_style(self, choice: StyleChoice) -> Stylizer:
        """This model running `choice` (a name, "a=0.7,b=0.3" or {name: weight}; None: the first style).

        One ConfigError line for an unknown name or bad weights (`styles` lists the names). Each choice
        is bound once and kept: asking for it again returns the same stylizer. Blending costs nothing
        per image: the blend is baked into the weights of a single-style network."""
        weights = style_weights(choice, self.styles)
        key = _key(weights)
        if self._restyle is None or key == _key(self.style_weights):
            return self
        if key not in self._by_style:
            restyled = self._restyle(weights)
            restyled._restyle, restyled._by_style, restyled.styles = self._restyle, self._by_style, self.styles
            restyled.style_weights = weights
            self._by_style[key] = restyled
        return self._by_style[key]

    @property
    def backend(self) -> str:
        """What runs: "compiled" only while the compiled graph does (a failed compile falls back)."""
        if self._backend == "compiled" and isinstance(self._run, FastRunner) and not self._run.compiled:
            return "eager-fast"
        return self._backend

    def __call__(self, images: Any, tile: int | str | None = "auto", style: StyleChoice = None) -> Any:
        """`tile`: "auto" (tiles only where memory requires), None (never), or a tile size in px;
        `style`: for a model of several styles, which one or which blend (default: this stylizer's)."""
        if style is not None:
            return self.with_style(style)(images, tile)
        if isinstance(images, torch.Tensor):
            batch = check_tensor(images)
            out = self.stylize_tensor(batch if images.dim() == 4 else batch.unsqueeze(0), tile)
            return out if images.dim() == 4 else out[0]
        picture = as_picture(images)
        out = to_array(self.stylize_tensor(to_tensor(picture).unsqueeze(0), tile)[0])
        return out if isinstance(images, np.ndarray) else Image.fromarray(out)

    def stylize_image(self, image: Any, tile: int | str | None = "auto", style: StyleChoice = None) -> Image.Image:
        """A Pillow image, an image path or a uint8 (H, W, 3) array -> the stylized Pillow image."""
        if style is not None:
            return self.with_style(style).stylize_image(image, tile)
        out = to_array(self.stylize_tensor(to_tensor(as_picture(image)).unsqueeze(0), tile)[0])
        return Image.fromarray(out)

    def activation_bytes_per_pixel(self) -> float:
        model = self.metadata.get("model") or {}
        return activation_bytes_per_pixel(model, self.precision, fast=isinstance(self._run, FastRunner))

    def plan_tile(
        self,
        shape: tuple[int, ...],
        tile: int | str | None = "auto",
        limit: int | None = None,
        name: str = "the image",
        reserved: int = 0,
    ) -> int | None:
        """The tile size `stylize_tensor` uses for images of `shape` within `limit` bytes (None: whole);
        `reserved`: bytes of the whole budget already taken outside `limit` (see `choose_tile`)."""
        if tile is None or isinstance(tile, int):  # decided by the caller: no memory to read (every video frame)
            return tile
        limit = memory_limit(self.max_memory, self.device) if limit is None else limit
        per_pixel = self.activation_bytes_per_pixel()
        return choose_tile(
            per_pixel, shape, limit, tile, reference=self.network is not None, name=name, reserved=reserved
        )

    def stylize_tensor(self, images: torch.Tensor, tile: int | str | None = "auto") -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> float32 of the same shape, tiled where `plan_tile` says so."""
        tile = self.plan_tile(tuple(images.shape), tile)
        if not tile:
            return self._forward(images)
        if self.network is None:  # exported graphs cannot be re-normalised: each tile uses its own statistics
            return stylize_tiled(self._forward, images, tile)
        tiler = self.eager()
        with whole_image_statistics(tiler.network, images):
            return stylize_tiled(tiler._forward, images, tile)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
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
            backend = "eager-fast"
            eager = Stylizer(
                runner, self.metadata, self.device, self.precision, backend, runner.module, self.max_memory
            )
            eager.style_weights = self.style_weights
            eager._restyle, eager._by_style = self._restyle, self._by_style  # other choices: the model's own
            return eager
        return self


def _key(weights: torch.Tensor) -> tuple[float, ...]:
    """Style weights as a cache key: blends equal to float precision are the same choice."""
    return tuple(round(float(w), 6) for w in weights)


# Floats a little outside [0, 1] come from resampling and colour conversions; far outside is 0..255 data.
RANGE_TOLERANCE = 1e-3


def check_tensor(images: torch.Tensor) -> torch.Tensor:
    """`images` as float (N, 3, H, W) or (3, H, W) in [0, 1]; a TypeError/ValueError saying what to pass."""
    if not images.is_floating_point():
        raise TypeError(
            f"expected a float tensor in [0, 1], got {images.dtype}; for 8-bit images pass "
            "images.float() / 255, or a uint8 numpy array (H, W, 3)"
        )
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
    if images.numel() and (images.min() < -RANGE_TOLERANCE or images.max() > 1 + RANGE_TOLERANCE):
        low, high = images.min().item(), images.max().item()
        raise ValueError(f"expected values in [0, 1], got {low:.3g}..{high:.3g}; divide 0..255 data by 255")
    return images


def as_picture(image: Any) -> Image.Image | np.ndarray:
    """A path, Pillow image or uint8 (H, W, 3) array as something `to_tensor` takes."""
    if isinstance(image, (str, Path)):
        return open_rgb(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"expected a uint8 array of shape (H, W, 3), got {image.dtype} {image.shape}; "
                "for floats in [0, 1] pass torch.from_numpy(array).permute(2, 0, 1)"
            )
        return image
    raise TypeError(
        f"cannot stylize a {type(image).__name__}; pass an image path, a Pillow image, a uint8 numpy array "
        "(H, W, 3) or a float tensor in [0, 1] (N, 3, H, W)"
    )


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def _torch_runner(module: Callable[[torch.Tensor], torch.Tensor], device: torch.device, precision: str):
    def run(images: torch.Tensor) -> torch.Tensor:
        with _autocast(device, precision):
            return module(images)

    return run


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
    metadata = parse(text)
    if _num_styles(metadata) == 1:
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

    return (run_with(None) if _num_styles(metadata) == 1 else run_with), metadata


def load_model(
    path: str | Path,
    device: str = "cpu",
    precision: str = "auto",
    compile: bool = False,
    max_memory: int | str | None = None,
    style: StyleChoice = None,
) -> Stylizer:
    """A `Stylizer` for the model at `path` (.pt, .ckpt, .onnx or .pt2).

    `style`: which of the model's styles to run, or a blend ("wave", "starry=0.7,wave=0.3" or
    {"starry": 0.7, "wave": 0.3}); default: its first. The names are in `load_model(path).styles`;
    a name the model does not hold is one ConfigError line that lists them. A single-style model
    takes its own name only.

    `precision="auto"` runs .pt/.ckpt models in bf16 where the hardware has native bf16 (the
    fast path, within 35 dB PSNR of fp32) and exported models in fp32. `compile=True` compiles
    the fast path with torch.compile: tens of seconds once, then about twice as fast on CPU.
    `max_memory` (bytes, or a size such as "8G") bounds what one call may allocate for the
    network; larger images are tiled (default: a share of the memory free at the call).
    """
    path = Path(path)
    if isinstance(max_memory, str):
        try:
            max_memory = parse_size(max_memory)
        except ValueError as error:
            raise ConfigError(f"max_memory: {error}") from None
    if max_memory is not None and max_memory <= 0:
        raise ConfigError(f"max_memory must be positive, not {max_memory}")
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, not {precision!r}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    target = resolve_device(device)
    suffix = path.suffix.lower()
    if precision == "auto":
        precision = native_precision(target.type) if suffix in (".pt", ".ckpt") else "fp32"
    if suffix in (".onnx", ".pt2"):
        loader, backend = (_load_onnx, "onnxruntime") if suffix == ".onnx" else (_load_pt2, "torch.export")
        run, metadata = loader(path, target, precision)
        if _num_styles(metadata) == 1:
            style_weights(style, _names(metadata))  # its own name is the only choice: anything else is refused
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
        style_weights(style, _names(metadata))  # its own name is the only choice: anything else is refused
        return _network_stylizer(network.to(target), metadata, target, precision, compile, max_memory)
    # Each choice runs as a single-style network with the chosen rows baked in: as fast as one.
    return _several_styles(
        metadata,
        lambda weights: _network_stylizer(
            bake_style(network, weights).eval().to(target), metadata, target, precision, compile, max_memory
        ),
        style,
    )


def _num_styles(metadata: dict[str, Any]) -> int:
    return int((metadata.get("model") or {}).get("num_styles", 1))


def _names(metadata: dict[str, Any]) -> list[str]:
    return [s["name"] for s in styles_of(metadata) if isinstance(s.get("name"), str)]


def _several_styles(
    metadata: dict[str, Any], restyle: Callable[[torch.Tensor], Stylizer], style: StyleChoice = None
) -> Stylizer:
    """A stylizer of the chosen style (default: the first) that `with_style` re-binds through `restyle(weights)`.

    The choice is checked before anything is built; every stylizer bound from it shares one cache."""
    weights = style_weights(style, _names(metadata))
    chosen = restyle(weights)
    chosen._restyle, chosen.style_weights = restyle, weights
    chosen._by_style[_key(weights)] = chosen
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


def load_network(path: str | Path) -> tuple[TransformerNet, dict[str, Any]]:
    """The eager network and metadata of a `.pt` or `.ckpt` file (what export starts from)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if path.suffix.lower() == ".ckpt":
        return load_lightning_checkpoint(path)
    return load_inference_checkpoint(path)
