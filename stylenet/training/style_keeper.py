"""Holding a trained model's styles while its shared weights learn a new one.

Adding a style with `init_trains=all` trains the shared weights too, which would repaint every old
style. Learning without forgetting (Li and Hoiem 2016, arXiv 1606.09282) needs none of the old
paintings: each step also runs the photos through the network in one of the old styles (their rows
as the model had them) and pulls that output towards the original model's.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from stylenet.networks.style_rows import norm_names
from stylenet.networks.transformer import TransformerNet


class StyleKeeper(nn.Module):
    """`weight` x the mean squared difference between a single-style network's output in one of `base`'s styles
    (`base`'s rows in place of its own norms) and `base`'s output in that style, the style drawn at random."""

    def __init__(self, base: TransformerNet, weight: float) -> None:
        super().__init__()
        self.weight = weight
        self.num_styles = base.num_styles
        self.base = copy.deepcopy(base).eval().requires_grad_(False)
        # The old styles' rows as fixed buffers (S, C): moved to the device with the module, never trained.
        self.row_keys = [f"{name}.{param}" for name in norm_names(base) for param in ("weight", "bias")]
        state = self.base.state_dict()
        for index, key in enumerate(self.row_keys):
            rows = state[key] if base.num_styles > 1 else state[key].unsqueeze(0)
            self.register_buffer(f"row_{index}", rows.detach().clone().float(), persistent=False)

    def train(self, mode: bool = True) -> StyleKeeper:
        super().train(mode)
        self.base.eval()  # the reference stays as it was, whatever the module around it is set to
        return self

    def forward(self, network: TransformerNet, images: torch.Tensor) -> torch.Tensor:
        """The keep term for `images` (B, 3, H, W) in one old style, drawn afresh each call."""
        # At half the training size: a quarter of the pixels (the term adds 15% to a step of 256 px photos),
        # and what holds the shared weights' output at one scale holds it at the others (docs/multistyle.md).
        images = F.avg_pool2d(images, 2)
        style = int(torch.randint(self.num_styles, ()))
        with torch.no_grad():
            choice = F.one_hot(torch.tensor(style), self.num_styles).float().to(images.device)
            target = self.base(images) if self.num_styles == 1 else self.base(images, choice)
        rows = {key: getattr(self, f"row_{i}")[style] for i, key in enumerate(self.row_keys)}
        output = functional_call(network, rows, (images,), strict=False)
        return self.weight * F.mse_loss(output.float(), target.float())
