"""The keep term that holds a model's old styles while a new style trains its shared weights."""

from __future__ import annotations

import pytest
import torch

from stylenet.networks.style_rows import bake_style
from stylenet.networks.transformer import TransformerNet
from stylenet.training.style_keeper import StyleKeeper


def _base(num_styles: int) -> TransformerNet:
    torch.manual_seed(0)
    base = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=num_styles).eval()
    with torch.no_grad():  # rows that differ between styles, so that the keeper's choice of row matters
        for parameter in base.parameters():
            if parameter.dim() == 2:
                parameter.add_(torch.randn_like(parameter) * 0.5)
    return base


@pytest.mark.parametrize("num_styles", [1, 3])
def test_the_keep_term_is_zero_for_the_models_own_shared_weights(num_styles: int) -> None:
    base = _base(num_styles)
    student = bake_style(base, torch.full((num_styles,), 1.0 / num_styles)).eval()  # the new style's start
    keeper = StyleKeeper(base, weight=10.0)
    photos = torch.rand(2, 3, 24, 24)
    for _ in range(6):  # whichever old style is drawn, its row on the same shared weights is the same network
        with torch.no_grad():
            assert float(keeper(student, photos)) < 1e-10


def test_the_keep_term_pulls_drifted_shared_weights_back_to_the_old_styles() -> None:
    base = _base(3)
    student = bake_style(base, torch.full((3,), 1.0 / 3)).train()
    with torch.no_grad():  # shared weights moved by the new style
        for parameter in student.parameters():
            if parameter.dim() == 4:
                parameter.add_(torch.randn_like(parameter) * 0.02)
    keeper = StyleKeeper(base, weight=1.0)
    photos = torch.rand(4, 3, 24, 24)

    def drift() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return sum(float(keeper(student.eval(), photos)) for _ in range(9)) / 9

    before = drift()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    student.train()
    for _ in range(60):
        optimizer.zero_grad()
        keeper(student, photos).backward()
        optimizer.step()
    assert before > 1e-4 and drift() < 0.5 * before
    # the old styles' rows are the keeper's own copies: the base is never trained
    for key, value in keeper.base.state_dict().items():
        assert torch.equal(value, base.state_dict()[key]), key
