"""What keeps DDP ranks in step and resumes honest: every rank stops together on a non-finite
loss, and a checkpoint whose network is not the configured one stops with one line."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_config, tiny_overrides

from stylenet.train import train
from stylenet.training.module import NetworkMismatchError, NonFiniteLossError, StyleTransferModule, network_mismatch


class TwoRanks:
    """A strategy whose reduce() also sees another rank's value, as an all-reduce would."""

    def __init__(self, other: float):
        self.other = other
        self.reductions = 0

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "min"
        self.reductions += 1
        return torch.minimum(tensor, torch.tensor(self.other))


def watching(other_rank_first_bad_step: float, every: int = 50) -> SimpleNamespace:
    """This rank's side of StyleTransferModule's finiteness check, without a network."""
    strategy = TwoRanks(other_rank_first_bad_step)
    trainer = SimpleNamespace(strategy=strategy)
    module = SimpleNamespace(
        _trainer=trainer, trainer=trainer, _first_non_finite={}, device=torch.device("cpu"), global_step=0
    )
    module.check_finite_every_n_steps = every
    module._running_loss = None
    module.JUMP_FACTOR, module.JUMP_AFTER_STEPS = StyleTransferModule.JUMP_FACTOR, StyleTransferModule.JUMP_AFTER_STEPS
    for name in ("_watch_finite", "_stop_if_non_finite", "on_train_batch_end"):
        setattr(module, name, getattr(StyleTransferModule, name).__get__(module))
    return module


def steps(module: SimpleNamespace, losses: list[float], stage: str = "train") -> None:
    for step, loss in enumerate(losses):
        module.global_step = step
        module._watch_finite(torch.tensor(loss), stage)


def test_a_rank_with_finite_losses_stops_when_another_rank_diverged() -> None:
    module = watching(other_rank_first_bad_step=7)
    steps(module, [1.0, 0.5, 0.25])
    with pytest.raises(NonFiniteLossError, match="NaN or inf, or jumped over 100x its running mean, at step 7"):
        module._stop_if_non_finite("train")


def test_the_first_non_finite_step_of_any_rank_is_named() -> None:
    module = watching(other_rank_first_bad_step=5)
    steps(module, [1.0, 2.0, math.nan, math.inf, math.nan])
    with pytest.raises(NonFiniteLossError, match="step 2"):
        module._stop_if_non_finite("train")


def test_no_rank_diverged_no_stop() -> None:
    module = watching(other_rank_first_bad_step=math.inf)
    steps(module, [1.0, 0.5])
    module._stop_if_non_finite("train")
    module._stop_if_non_finite("val")  # no val step yet on this rank: it still takes part


def test_ranks_agree_every_n_steps_not_every_step() -> None:
    module = watching(other_rank_first_bad_step=math.inf, every=4)
    for step in range(1, 13):  # epochs of 3 batches: batch_idx restarts, the global step goes on
        module.global_step = step
        module.on_train_batch_end(None, None, (step - 1) % 3)
    assert module.trainer.strategy.reductions == 3


# --- loading a Lightning checkpoint into another network ----------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained")
    train(compose_config(tiny_overrides(run) + ["trainer.max_steps=2"]))
    return run / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.slow  # with the tiny training run of its fixture
@pytest.mark.parametrize(
    "setting, message",
    [
        ("model.num_residual_blocks=2", r"model.num_residual_blocks=1 \(configured: 2\)"),
        ("model.width=0.5", r"model.width=0.25 \(configured: 0.5\)"),
    ],
)
def test_resuming_into_another_network_is_one_clear_line(
    tiny_checkpoint: Path, tmp_path: Path, setting: str, message: str
) -> None:
    cfg = compose_config(tiny_overrides(tmp_path) + [f"ckpt_path={tiny_checkpoint}", "trainer.max_steps=4", setting])
    with pytest.raises(NetworkMismatchError, match=message) as caught:
        train(cfg)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()  # refused before the run wrote anything


@pytest.mark.slow
def test_a_checkpoint_without_settings_names_the_differing_weights(tiny_checkpoint: Path) -> None:
    from stylenet.networks.transformer import TransformerNet

    checkpoint = torch.load(tiny_checkpoint, weights_only=False)
    del checkpoint["stylenet"]
    assert network_mismatch(checkpoint, TransformerNet(width=0.25, num_residual_blocks=1)) is None
    message = network_mismatch(checkpoint, TransformerNet(width=0.25, num_residual_blocks=2))
    assert message and "0 unexpected" in message and "residuals.1." in message
