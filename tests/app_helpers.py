"""Tiny models and hostile files shared by the app's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylenet.checkpoint import save_inference_checkpoint, style_metadata
from stylenet.networks.transformer import TransformerNet


def tiny_model(path: Path, styles: tuple[str, ...] = ("tiny",), seed: int = 0) -> Path:
    """A narrow network of `styles`, its weights spread so that outputs differ from input and style to style."""
    torch.manual_seed(seed)
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=len(styles))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    metadata = style_metadata([{"name": name, "image": f"{name}.jpg", "size": 64} for name in styles])
    return save_inference_checkpoint(path, network.eval(), metadata)


def photo(path: Path, width: int = 48, height: int = 32) -> Path:
    """Smooth colour ramps: a photo-like image with every channel in use."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([40 + 180 * x / width, 40 + 180 * y / height, 120 + 0 * x], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path
