"""Per-image optimisation of a perceptual loss: the method of Gatys, Ecker & Bethge (2016).

L. A. Gatys, A. S. Ecker and M. Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016. Instead of training a network (Johnson et al. 2016), the pixels of one
image are optimised directly against the same content + style + TV objective. It is slow but
is the quality a feed-forward model is trying to reach, so `stylenet evaluate` uses it as a
reference for a trained model's loss and speed.
"""

from __future__ import annotations

import torch

from stylenet.errors import ConfigError
from stylenet.losses.perceptual import PerceptualLoss

METHODS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


def optimize(
    content: torch.Tensor,
    loss: PerceptualLoss,
    steps: int = 300,
    method: str = "lbfgs",
    lr: float | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Optimise the pixels of `content` (1, 3, H, W) in [0, 1] to minimise `loss(image, content)`.

    Gatys et al. 2016, starting from the content image (their paper starts from noise; starting
    from the content converges in far fewer steps to the same kind of result, and is deterministic).
    `method` is ``lbfgs`` (one L-BFGS iteration with a strong-Wolfe line search per step; a step
    that does not lower the loss clears its curvature memory) or
    ``adam`` (`lr` defaults to 0.02). Pixels are clamped to [0, 1] after every step, so the loss
    is always evaluated on a valid image.

    Returns the final image (detached, in [0, 1]) and the total loss history: entry 0 is the
    loss of the content image, entry i the loss after step i (``steps + 1`` values).
    """
    if method not in METHODS:
        raise ConfigError(f"optimisation method must be one of {', '.join(METHODS)}, not {method!r}")
    if steps < 0:
        raise ConfigError(f"optimisation steps must be 0 or more, not {steps}")
    # Contiguous: L-BFGS flattens gradients with .view(), which fails on e.g. channels-last tensors from PIL.
    content = content.detach().contiguous()
    image = content.clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    rate = DEFAULT_LR[method] if lr is None else lr

    def fresh() -> torch.optim.Optimizer:
        if method == "lbfgs":
            # max_iter=1: one quasi-Newton iteration per `step()` call keeps the curvature history
            # across calls while letting us clamp pixels between iterations.
            return torch.optim.LBFGS([image], lr=rate, max_iter=1, history_size=50, line_search_fn="strong_wolfe")
        return torch.optim.Adam([image], lr=rate)

    optimizer = fresh()

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total = loss(image, content).total
        total.backward()
        return total

    history: list[float] = []
    for _ in range(steps):
        # The closure's first evaluation in each step is the loss of the current (clamped) image,
        # so recording it costs no extra VGG pass.
        if method == "lbfgs":
            value = float(optimizer.step(closure).detach())
            # Clamping moves pixels after L-BFGS recorded its step, so a stored curvature pair can
            # describe a move that never happened; then every later step repeats the same failed
            # line search and the loss stays put for good. A step that gains nothing restarts
            # the curvature memory (the next step is steepest descent) instead.
            if history and value >= history[-1]:
                optimizer = fresh()
        else:
            value = float(closure().detach())
            optimizer.step()
        history.append(value)
        with torch.no_grad():
            image.clamp_(0, 1)
    with torch.no_grad():
        history.append(float(loss(image, content).total))
    return image.detach(), history
