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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stylenet.errors import ConfigError
from stylenet.losses.gram import gram_matrix
from stylenet.losses.vgg import VGG19Features

_EPS = 1e-8


@dataclass
class LossTerms:
    """Weighted loss terms of one batch; `total` is what the optimiser minimises."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.content + self.style + self.tv

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"content_loss": self.content, "style_loss": self.style, "tv_loss": self.tv, "total_loss": self.total}


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between vertically and horizontally adjacent pixels."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).pow(2).mean()
    dw = (images[..., :, 1:] - images[..., :, :-1]).pow(2).mean()
    return dh + dw


def _relative_squared_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||x - target||^2 / ||target||^2 per sample, averaged over the batch."""
    dims = tuple(range(1, x.dim()))
    return ((x - target).pow(2).sum(dims) / (target.pow(2).sum(dims) + _EPS)).mean()


class PerceptualLoss(nn.Module):
    """Johnson's training objective for one style image.

    The style image's Gram matrices are computed once, here, and kept as buffers; each step
    then runs VGG once on the content batch (without gradients) and once on the output.
    """

    def __init__(
        self,
        vgg: VGG19Features,
        style_image: torch.Tensor,
        content_layers: list[str],
        style_layers: dict[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
    ):
        super().__init__()
        self.vgg = vgg
        self.content_layers = list(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        with torch.no_grad():
            features = vgg(style_image, list(self.style_layers))
        for name, feature in features.items():
            # Not persistent: targets are rebuilt from the style image, never read from checkpoints.
            self.register_buffer(f"gram_{name}", gram_matrix(feature.float()), persistent=False)  # (1, C, C)

    def style_target(self, layer: str) -> torch.Tensor:
        return getattr(self, f"gram_{layer}")

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> LossTerms:
        """Loss of stylised `output` for `content`, both (B, 3, H, W) in [0, 1]."""
        with torch.no_grad():
            content_features = self.vgg(content, self.content_layers)
        output_features = self.vgg(output, self.content_layers + list(self.style_layers))
        content_loss = sum(
            _relative_squared_error(output_features[name].float(), content_features[name].float())
            for name in self.content_layers
        ) / len(self.content_layers)
        style_loss = sum(
            weight * _relative_squared_error(gram_matrix(output_features[name].float()), self.style_target(name))
            for name, weight in self.style_layers.items()
        )
        return LossTerms(
            content=self.content_weight * content_loss,
            style=self.style_weight * style_loss,
            tv=self.tv_weight * total_variation(output.float()),
        )


def build_perceptual_loss(
    style_image: torch.Tensor,
    vgg_weights: str,
    content_layers: list[str],
    style_layers: list[str],
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    style_layer_weights: list[float] | None = None,
) -> PerceptualLoss:
    """A `PerceptualLoss` on a VGG19 truncated after the deepest of the layers named."""
    if not content_layers or not style_layers:
        raise ConfigError("loss.content_layers and loss.style_layers must each name at least one VGG19 layer")
    weights = list(style_layer_weights) if style_layer_weights is not None else [1.0] * len(style_layers)
    if len(weights) != len(style_layers):
        raise ConfigError(f"loss.style_layer_weights has {len(weights)} values for {len(style_layers)} style layers")
    vgg = VGG19Features(list(content_layers) + list(style_layers), weights=vgg_weights)
    layer_weights = dict(zip(style_layers, weights, strict=True))
    return PerceptualLoss(vgg, style_image, content_layers, layer_weights, content_weight, style_weight, tv_weight)
