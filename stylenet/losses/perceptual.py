"""Content, style (Gram) and total-variation losses of Johnson et al. 2016.

Normalisation (documented because loss weights only mean something relative to it):
- content: squared feature distance divided by the squared norm of the content features,
  per image, averaged over content layers;
- style: for each layer, squared distance between Gram matrices divided by the squared norm
  of the style image's Gram matrix, then summed with per-layer weights;
- total variation: mean squared difference of neighbouring pixels of the [0, 1] output.
Content and style terms are thus relative errors, independent of the activation scale of the
VGG weights in use (Caffe's activations are ~255x torchvision's), so one set of
`content_weight` / `style_weight` works for every `loss.vgg_weights`.

Several styles (a network with conditional instance norm): each style has its own Gram
targets and weights, and each image of a batch is scored against the style it was stylised in.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stylenet.errors import ConfigError
from stylenet.losses.gram import gram_matrix
from stylenet.losses.temporal import SEAM, TemporalPair, temporal_error
from stylenet.losses.vgg import LAYER_NAMES, LossNetworkError, VGG19Features, check_weights

_EPS = 1e-8


@dataclass
class LossTerms:
    """Weighted loss terms of one batch; `total` is what the optimiser minimises."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    temporal: torch.Tensor | None = None  # only in training with `temporal_weight` > 0

    @property
    def total(self) -> torch.Tensor:
        total = self.content + self.style + self.tv
        return total if self.temporal is None else total + self.temporal

    def as_dict(self) -> dict[str, torch.Tensor]:
        terms = {"content_loss": self.content, "style_loss": self.style, "tv_loss": self.tv}
        if self.temporal is not None:
            terms["temporal_loss"] = self.temporal
        return {**terms, "total_loss": self.total}


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between vertically and horizontally adjacent pixels."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).pow(2).mean()
    dw = (images[..., :, 1:] - images[..., :, :-1]).pow(2).mean()
    return dh + dw


def _relative_squared_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||x - target||^2 / ||target||^2 per sample: (B,)."""
    dims = tuple(range(1, x.dim()))
    return (x - target).pow(2).sum(dims) / (target.pow(2).sum(dims) + _EPS)


def _first_style_if_none(styles: torch.Tensor | None, output: torch.Tensor) -> torch.Tensor:
    """`styles` (B,), or the first style for every image of `output` where none is given."""
    return torch.zeros(len(output), dtype=torch.long, device=output.device) if styles is None else styles


def _per_image_total_variation(images: torch.Tensor) -> torch.Tensor:
    """`total_variation` of each image: (B,)."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).pow(2).mean((1, 2, 3))
    dw = (images[..., :, 1:] - images[..., :, :-1]).pow(2).mean((1, 2, 3))
    return dh + dw


def _as_list(value: float | Sequence[float], count: int, name: str) -> list[float]:
    values = [float(value)] * count if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != count:
        raise ConfigError(f"loss.{name} has {len(values)} values for {count} styles")
    return values


class PerceptualLoss(nn.Module):
    """Johnson's training objective for one style image, or for several (one per network style).

    The style images' Gram matrices are computed once, here, and kept as buffers; each step
    then runs VGG once on the content batch (without gradients) and once on the output.
    Weights are one number for all styles or one per style.

    `temporal_weight` > 0 adds the stability term of Wang et al. 2020 (stylenet/losses/temporal.py): the
    network's output for a copy of the photo moved by a random smooth flow of up to `temporal_flow` pixels
    (`temporal_motion="shift"`: a whole-pixel shift of the whole image; "objects": blobs of the photo moving
    across it by shifts of their own; "still": blobs moving by whole pixels on a background that does not
    move) plus noise of standard deviation
    `temporal_noise` must equal its output for the photo, moved alike. `temporal_detach` makes that moved
    output a fixed target: only the copy's output is pulled towards it, so the term cannot lower itself by
    softening the output the content and style terms judge (measured worse than the default, docs/video.md).
    Like the other weights, `temporal_weight` may be one per style: styles whose texture costs little to
    steady can be held harder than those it costs much (docs/video.md). The caller makes the pair
    (`temporal_pair`, None when the term is off) and runs the network on it: the term needs the network,
    not just its output, and the random draws stay outside compiled code.
    """

    def __init__(
        self,
        vgg: VGG19Features,
        style_image: torch.Tensor | Sequence[torch.Tensor],
        content_layers: list[str],
        style_layers: dict[str, float],
        content_weight: float | Sequence[float],
        style_weight: float | Sequence[float],
        tv_weight: float | Sequence[float],
        temporal_weight: float | Sequence[float] = 0.0,
        temporal_flow: float = 8.0,
        temporal_noise: float = 0.02,
        temporal_motion: str = "smooth",
        temporal_detach: bool = False,
        temporal_seam: int = SEAM,
    ):
        super().__init__()
        images = [style_image] if isinstance(style_image, torch.Tensor) else list(style_image)
        temporal_weights = _as_list(temporal_weight, len(images), "temporal_weight")
        if min(temporal_weights) < 0:
            raise ConfigError(f"loss.temporal_weight must be >= 0, got {temporal_weight}")
        try:
            pair = TemporalPair(temporal_flow, temporal_noise, temporal_motion, temporal_seam)
        except ValueError as error:
            raise ConfigError(f"loss.temporal_flow, _noise, _motion and _seam: {error}") from error
        self.temporal_pair = pair if max(temporal_weights) > 0 else None
        self.register_buffer("temporal_weights", torch.tensor(temporal_weights), persistent=False)  # (S,)
        self.temporal_detach = bool(temporal_detach)
        self.vgg = vgg
        self.content_layers = list(content_layers)
        self.style_layers = dict(style_layers)
        self.num_styles = len(images)
        weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}
        for term, value in weights.items():
            values = _as_list(value, self.num_styles, f"{term}_weight")
            self.register_buffer(f"{term}_weights", torch.tensor(values), persistent=False)  # (S,)
        grams: dict[str, list[torch.Tensor]] = {name: [] for name in self.style_layers}
        with torch.no_grad():
            for image in images:  # one at a time: each painting has its own size
                for name, feature in vgg(image, list(self.style_layers)).items():
                    grams[name].append(gram_matrix(feature.float()))  # (1, C, C)
        for name, per_style in grams.items():
            # Not persistent: targets are rebuilt from the style images, never read from checkpoints.
            self.register_buffer(f"gram_{name}", torch.cat(per_style), persistent=False)  # (S, C, C)

    def style_target(self, layer: str) -> torch.Tensor:
        return getattr(self, f"gram_{layer}")

    def forward(self, output: torch.Tensor, content: torch.Tensor, styles: torch.Tensor | None = None) -> LossTerms:
        """Loss of stylised `output` for `content`, both (B, 3, H, W) in [0, 1]; `styles` (B,) says which style
        each output was stylised in (default: the first), and the batch's terms are means over its images."""
        return self.terms_and_style_errors(output, content, styles)[0]

    def terms_and_style_errors(
        self, output: torch.Tensor, content: torch.Tensor, styles: torch.Tensor | None = None
    ) -> tuple[LossTerms, dict[str, torch.Tensor]]:
        """`forward`'s terms, and each style layer's relative Gram error, (B,), before the layer and style
        weights: where a stylisation falls short of the painting (`stylenet evaluate` reports them)."""
        styles = _first_style_if_none(styles, output)
        with torch.no_grad():
            content_features = self.vgg(content, self.content_layers)
        output_features = self.vgg(output, self.content_layers + list(self.style_layers))
        content_loss = sum(
            _relative_squared_error(output_features[name].float(), content_features[name].float())
            for name in self.content_layers
        ) / len(self.content_layers)
        errors = {
            name: _relative_squared_error(gram_matrix(output_features[name]), self.style_target(name)[styles])
            for name in self.style_layers
        }
        style_loss = sum(weight * errors[name] for name, weight in self.style_layers.items())
        terms = LossTerms(
            content=(self.content_weights[styles] * content_loss).mean(),
            style=(self.style_weights[styles] * style_loss).mean(),
            tv=(self.tv_weights[styles] * _per_image_total_variation(output.float())).mean(),
        )
        return terms, errors

    def temporal(
        self,
        moved_output: torch.Tensor,
        output: torch.Tensor,
        flow: torch.Tensor,
        styles: torch.Tensor | None = None,
        compared: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The weighted stability term: `moved_output`, the network's output for the copy of the content that
        `temporal_pair` moved by `flow`, against `output` moved alike, over the pixels `compared` (B, 1, H, W)
        keeps (None: all); `styles` (B,) as in `forward`."""
        styles = _first_style_if_none(styles, output)
        target = output.detach() if self.temporal_detach else output
        errors = temporal_error(target.float(), moved_output.float(), flow, compared)  # (B,)
        return (self.temporal_weights[styles] * errors).mean()


_TARGET = "stylenet.losses.perceptual.build_perceptual_loss"  # configs/loss/perceptual.yaml


def check_layers(
    content_layers: Sequence[str], style_layers: Sequence[str], style_layer_weights: Sequence[float] | None = None
) -> None:
    """One ConfigError line naming the `loss.` setting whose layers cannot be built; checked before any work."""
    for key, layers in (("content_layers", content_layers), ("style_layers", style_layers)):
        if not layers:
            raise ConfigError(f"loss.{key} must name at least one VGG19 layer")
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if unknown:
            raise ConfigError(f"loss.{key}: unknown VGG19 layer(s) {unknown}; valid names look like relu4_2 or conv3_1")
    if style_layer_weights is not None and len(style_layer_weights) != len(style_layers):
        raise ConfigError(
            f"loss.style_layer_weights has {len(style_layer_weights)} values for {len(style_layers)} style layers"
        )


def check_loss_config(loss: Mapping[str, Any]) -> None:
    """The `loss` group of a training config, where it builds this loss: its keys, layers and VGG weights,
    before anything loads. Hydra's own keys (`_target_`, `_partial_`, ...) pass; another `_target_` is its own."""
    if loss.get("_target_", _TARGET) != _TARGET:
        return
    known = set(inspect.signature(build_perceptual_loss).parameters) - {"style_image"}
    unknown = sorted(key for key in set(loss) - known if not str(key).startswith("_"))
    if unknown:
        raise ConfigError(f"loss.{unknown[0]}: not a setting of the loss; it takes {', '.join(sorted(known))}")
    for key in ("content_layers", "style_layers"):
        if isinstance(loss.get(key), str):  # a list of one is wanted; a string would be read letter by letter
            raise ConfigError(f"loss.{key}={loss[key]}: give a list of VGG19 layer names, e.g. [{loss[key]}]")
    check_layers(list(loss["content_layers"]), list(loss["style_layers"]), loss.get("style_layer_weights"))
    try:
        check_weights(str(loss.get("vgg_weights", "caffe")))
    except LossNetworkError as error:  # a setting of this config, found before anything loads
        raise ConfigError(str(error)) from None


def build_perceptual_loss(
    style_image: torch.Tensor | Sequence[torch.Tensor],
    vgg_weights: str,
    content_layers: list[str],
    style_layers: list[str],
    content_weight: float | Sequence[float],
    style_weight: float | Sequence[float],
    tv_weight: float | Sequence[float],
    style_layer_weights: list[float] | None = None,
    temporal_weight: float | Sequence[float] = 0.0,
    temporal_flow: float = 8.0,
    temporal_noise: float = 0.02,
    temporal_motion: str = "smooth",
    temporal_detach: bool = False,
    temporal_seam: int = SEAM,
) -> PerceptualLoss:
    """A `PerceptualLoss` on a VGG19 truncated after the deepest of the layers named."""
    check_layers(content_layers, style_layers, style_layer_weights)
    weights = list(style_layer_weights) if style_layer_weights is not None else [1.0] * len(style_layers)
    vgg = VGG19Features(list(content_layers) + list(style_layers), weights=vgg_weights)
    layer_weights = dict(zip(style_layers, weights, strict=True))
    return PerceptualLoss(
        vgg,
        style_image,
        content_layers,
        layer_weights,
        content_weight,
        style_weight,
        tv_weight,
        temporal_weight,
        temporal_flow,
        temporal_noise,
        temporal_motion,
        temporal_detach,
        temporal_seam,
    )
