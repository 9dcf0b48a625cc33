"""The optimisation reference of `stylenet evaluate` (Gatys et al.): it must not stall."""

from __future__ import annotations

import types

import torch

from stylenet.optimize import optimize

START = torch.tensor([0.9, 0.5, 0.1]).view(1, 3, 1, 1)
TARGET = torch.tensor([0.2, 3.0, -2.0]).view(1, 3, 1, 1)
WEIGHT = torch.tensor([1.0, 50.0, 0.01]).view(1, 3, 1, 1)


def boxed_loss(image: torch.Tensor, content: torch.Tensor) -> types.SimpleNamespace:
    """A small smooth loss whose unconstrained minimum lies outside [0, 1]: the clamp decides the answer.

    Inside the box its minimum is about 200.049 (second pixel at 1, first near 0.109, third at 0)."""
    coupling = 10 * (image[0, 0] * image[0, 1] - 0.1).pow(2).sum()
    return types.SimpleNamespace(total=((image - TARGET).pow(2) * WEIGHT).sum() + coupling)


def test_lbfgs_does_not_stall_when_the_clamp_undoes_its_steps() -> None:
    # Without restarting its curvature memory, L-BFGS reaches 200.184 in two steps and stays there.
    image, history = optimize(START, boxed_loss, steps=60, method="lbfgs")
    assert history[-1] < 200.1
    assert history[-1] < history[10]
    assert float(image.min()) >= 0 and float(image.max()) <= 1


def test_the_loss_history_never_rises_above_the_start() -> None:
    _, history = optimize(START, boxed_loss, steps=20, method="lbfgs")
    assert len(history) == 21 and max(history) <= history[0]
