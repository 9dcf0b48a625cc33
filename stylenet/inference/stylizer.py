"""`Stylizer`: a loaded model as a function from images to stylised images, tiling where memory requires.

Built by `stylenet.inference.model.load_model`; it knows nothing of file formats, only the
function that runs the network (`run`) and, for a model of several styles, how to re-bind
another choice of style (`_restyle`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylenet.checkpoint import styles_of
from stylenet.imageio import UnreadableImageError, open_rgb, to_array, to_rgb, to_tensor
from stylenet.inference.fast import FastRunner
from stylenet.inference.global_norm import whole_image_statistics
from stylenet.inference.memory import activation_bytes_per_pixel, choose_tile, memory_budget, memory_limit
from stylenet.inference.style_choice import StyleChoice, choice_of, style_weights
from stylenet.inference.targets import not_a_file
from stylenet.inference.tiling import MIN_TILE, stylize_tiled
from stylenet.networks.transformer import TransformerNet


class MissingImageError(UnreadableImageError, FileNotFoundError):
    """An image path with no file behind it: an `UnreadableImageError` like any image that cannot be read,
    and still the `FileNotFoundError` it used to be."""


class Stylizer:
    """Stylizes images; `stylizer(x)` returns the same kind of image it is given.

    Takes float tensors in [0, 1], (N, 3, H, W) or (3, H, W), and returns float32 of that shape (an
    empty batch, N = 0, gives an empty batch); Pillow images, uint8 numpy arrays (H, W, 3) and image
    paths come back as Pillow images (paths) or of their own kind. Where the activations of a whole
    image would not fit in `max_memory` bytes (default: a share of the free memory,
    `memory.memory_limit`), it tiles on its own. NaN, infinity and missing files are refused (a
    ValueError; an `UnreadableImageError` naming the path).

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
        self.styles: list[str] = style_names(metadata)
        self.style_weights = style_weights(None, self.styles)  # (S,): the choice this stylizer runs
        self._by_style: dict[tuple[float, ...], Stylizer] = {}

    @property
    def max_memory(self) -> int | None:
        """Bytes one call may allocate for the network before it tiles; None: a share of what is free then."""
        return self._max_memory

    @max_memory.setter
    def max_memory(self, value: int | str | None) -> None:
        self._max_memory = memory_budget(value)  # "8G" as load_model takes it; nonsense refused here

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
        key = choice_key(weights)
        if self._restyle is None or key == choice_key(self.style_weights):
            return self
        if key not in self._by_style:
            restyled = self._restyle(weights)
            restyled._restyle, restyled._by_style, restyled.styles = self._restyle, self._by_style, self.styles
            restyled.style_weights = weights
            self._by_style[key] = restyled
        return self._by_style[key]

    @property
    def backend(self) -> str:
        """What runs: "compiled" only while the compiled graph does (a failed compile falls back; images
        too large for it to pay without memory reuse run eager all the same: `FastRunner.compiles`)."""
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
        if isinstance(image, torch.Tensor):  # as_picture's advice would name the tensor this method does not take
            raise TypeError(
                "stylize_image takes an image path, a Pillow image or a uint8 (H, W, 3) array; "
                "for a float tensor in [0, 1] call the stylizer itself: stylizer(images)"
            )
        out = to_array(self.stylize_tensor(to_tensor(as_picture(image)).unsqueeze(0), tile)[0])
        return Image.fromarray(out)

    def activation_bytes_per_pixel(self, shape: tuple[int, ...] | None = None) -> float:
        """Peak network bytes per input pixel (`stylenet.inference.memory`); for images of `shape`
        where given, else for whichever path costs more."""
        model = self.metadata.get("model") or {}
        if self._backend == "aoti":  # the fast path as Inductor compiled it
            return activation_bytes_per_pixel(model, self.precision, fast=True, compiled=True)
        fast = isinstance(self._run, FastRunner)
        compiled = fast and (self._run.compiled if shape is None else self._run.compiles(shape))
        return activation_bytes_per_pixel(model, self.precision, fast, compiled=compiled)

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
        if isinstance(tile, int) and not isinstance(tile, bool) and tile < MIN_TILE:  # 0 would mean "whole"
            raise ValueError(f"tile must be at least {MIN_TILE} px (or None: never tile), not {tile}")
        if tile is None or isinstance(tile, int):  # decided by the caller: no memory to read (every video frame)
            return tile
        limit = memory_limit(self.max_memory, self.device) if limit is None else limit
        per_pixel = self.activation_bytes_per_pixel(shape)
        return choose_tile(
            per_pixel, shape, limit, tile, reference=self.network is not None, name=name, reserved=reserved
        )

    def stylize_tensor(self, images: torch.Tensor, tile: int | str | None = "auto") -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> float32 of the same shape, tiled where `plan_tile` says so."""
        if not images.numel():  # no images in, none out (as torch's own layers do); no pixels is an error
            check_batch_shape(images)
            return torch.empty(images.shape, dtype=torch.float32, device=images.device)
        tile = self.plan_tile(tuple(images.shape), tile)
        if not tile:
            return self._forward(images)
        if self.network is None:  # exported graphs cannot be re-normalised: each tile uses its own statistics
            return stylize_tiled(self._forward, images, tile)
        tiler = self.eager()
        with whole_image_statistics(tiler.network, images):
            return stylize_tiled(tiler._forward, images, tile)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        check_batch_shape(images)
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


def choice_key(weights: torch.Tensor) -> tuple[float, ...]:
    """Style weights as a cache key: blends equal to float precision are the same choice."""
    return tuple(round(float(w), 6) for w in weights)


# Floats a little outside [0, 1] come from resampling and colour conversions; far outside is 0..255 data.
RANGE_TOLERANCE = 1e-3


def style_names(metadata: dict[str, Any]) -> list[str]:
    """The names of a model's styles, in row order."""
    return [s["name"] for s in styles_of(metadata) if isinstance(s, dict) and isinstance(s.get("name"), str)]


MIN_SIDE = 8  # the smallest side the network takes (README: "any input of at least 8x8")


def check_batch_shape(images: torch.Tensor) -> None:
    """A ValueError unless `images` is (N, 3, H, W) of at least MIN_SIDE x MIN_SIDE pixels."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if min(images.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {tuple(images.shape[-2:])}")


def check_tensor(images: torch.Tensor) -> torch.Tensor:
    """`images` as float (N, 3, H, W) or (3, H, W) in [0, 1]; a TypeError/ValueError saying what to pass."""
    if not images.is_floating_point():
        raise TypeError(
            f"expected a float tensor in [0, 1], got {images.dtype}; for 8-bit images pass "
            "images.float() / 255, or a uint8 numpy array (H, W, 3)"
        )
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
    if not images.numel():
        return images
    low, high = (value.item() for value in torch.aminmax(images))  # one pass; a NaN anywhere comes out as NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"expected values in [0, 1], got {low:.3g}..{high:.3g}: the images hold NaN or infinity")
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"expected values in [0, 1], got {low:.3g}..{high:.3g}; divide 0..255 data by 255")
    return images


def as_picture(image: Any) -> Image.Image | np.ndarray:
    """A path, Pillow image or uint8 (H, W, 3) array as something `to_tensor` takes."""
    if isinstance(image, (str, Path)):
        kind = not_a_file(Path(image))
        if kind:  # never opened: opening a pipe waits for a writer that may never come
            raise UnreadableImageError(f"{image}: {kind}, not an image file; pass a file's path or a Pillow image")
        try:
            return open_rgb(image)
        except FileNotFoundError:
            raise MissingImageError(f"{image}: no such image file") from None
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
