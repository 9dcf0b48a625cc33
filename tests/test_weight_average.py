"""The moving average of a network's weights: its arithmetic, where runs use it, and how it resumes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import compose_config, tiny_overrides

from stylenet.checkpoint import load_inference_checkpoint, load_lightning_checkpoint
from stylenet.errors import ConfigError
from stylenet.train import train
from stylenet.training.weight_average import CHECKPOINT_KEY as _AVERAGE_KEY
from stylenet.training.weight_average import WeightAverage


def _set(network: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.fill_(value)


def test_the_average_follows_the_weights_early_and_then_moves_by_the_decay() -> None:
    network = torch.nn.Linear(2, 2)
    _set(network, 0.0)
    average = WeightAverage(network, decay=0.5)
    _set(network, 1.0)
    average.update(network)  # decay min(0.5, 1/10) = 0.1: 0.1 * 0 + 0.9 * 1
    assert torch.allclose(average.average["weight"], torch.full((2, 2), 0.9))
    _set(network, 2.0)
    average.update(network)  # min(0.5, 2/11)
    expected = 2 / 11 * 0.9 + 9 / 11 * 2.0
    assert torch.allclose(average.average["bias"], torch.full((2,), expected))
    for _ in range(20):
        average.update(network)
    assert average.effective_decay() == 0.5  # the warm-up is over


def test_swapping_the_average_in_and_out_keeps_the_networks_own_tensors() -> None:
    network = torch.nn.Linear(3, 1)
    average = WeightAverage(network, decay=0.9)
    before = network.weight.detach().clone()
    _set(network, 5.0)
    trained = network.weight.detach().clone()
    identity = network.weight.data_ptr()
    with average.swapped_in(network):
        assert torch.equal(network.weight, before)
        assert network.weight.data_ptr() == identity
    assert torch.equal(network.weight, trained)


@pytest.mark.parametrize("decay", ["0", "1", "1.5", "-0.1", "abc"])
def test_a_decay_outside_zero_to_one_stops_before_training(tmp_path: Path, decay: str) -> None:
    cfg = compose_config(tiny_overrides(tmp_path) + [f"weight_average_decay={decay}"])
    with pytest.raises(ConfigError, match="weight_average_decay"):
        train(cfg)
    assert not (tmp_path / "run").exists()


@contextlib.contextmanager
def _state_at_fit_start() -> Iterator[dict]:
    """What the module holds when fitting starts (after a checkpoint has loaded): its network's weights and,
    when it averages, the average and its count."""
    from stylenet.training.module import StyleTransferModule

    seen: dict = {}
    original = StyleTransferModule.on_fit_start

    def on_fit_start(self):
        original(self)
        seen["weights"] = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        if self.weight_average is not None:
            seen["average"] = {k: v.clone() for k, v in self.weight_average.average.items()}
            seen["updates"] = self.weight_average.updates

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StyleTransferModule, "on_fit_start", on_fit_start)
        yield seen


def _network_of(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("network.") :]: v for k, v in state_dict.items() if k.startswith("network.")}


def test_an_averaging_run_keeps_the_average_and_its_checkpoints_resume_the_weights_as_trained(tmp_path: Path) -> None:
    first = compose_config(tiny_overrides(tmp_path / "a") + ["weight_average_decay=0.5"])
    train(first)
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    saved = checkpoint[_AVERAGE_KEY]
    assert saved["updates"] == 4 and saved["decay"] == 0.5
    average, trained = _network_of(checkpoint["state_dict"]), saved["training_weights"]
    assert average.keys() == trained.keys()
    assert any(not torch.equal(average[k], trained[k]) for k in average), "the average is not the last weights"

    # Every reader of a model gets the average: the kept .pt and a .ckpt read for inference.
    kept, _ = load_inference_checkpoint(tmp_path / "a" / "kept" / "starry.pt")
    from_ckpt, _ = load_lightning_checkpoint(last)
    for name, value in kept.state_dict().items():
        assert torch.equal(value, average[name])
        assert torch.equal(from_ckpt.state_dict()[name], average[name])

    # Resuming trains on from the weights as trained, and the average goes on from where it was.
    resumed = compose_config(
        tiny_overrides(tmp_path / "b") + ["weight_average_decay=0.5", f"ckpt_path={last}", "trainer.max_steps=6"]
    )
    with _state_at_fit_start() as seen:
        train(resumed)
    assert seen["updates"] == 4
    for name in average:
        assert torch.equal(seen["weights"][name], trained[name])
        assert torch.equal(seen["average"][name], average[name])
    assert (
        torch.load(tmp_path / "b" / "run" / "checkpoints" / "last.ckpt", weights_only=True)[_AVERAGE_KEY]["updates"]
        == 6
    )


def test_validation_scores_the_average_and_training_goes_on_with_its_own_weights(tmp_path: Path) -> None:
    from stylenet.training.module import StyleTransferModule

    during, after = [], []
    original_start, original_end = (
        StyleTransferModule.on_validation_epoch_start,
        StyleTransferModule.on_validation_epoch_end,
    )

    def start(self):
        own = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        original_start(self)
        if self.weight_average is not None:
            during.append(
                all(torch.equal(self.network.state_dict()[k], v) for k, v in self.weight_average.average.items())
            )
            self._test_own = own

    def end(self):
        original_end(self)
        if hasattr(self, "_test_own"):
            after.append(all(torch.equal(self.network.state_dict()[k], v) for k, v in self._test_own.items()))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StyleTransferModule, "on_validation_epoch_start", start)
        patch.setattr(StyleTransferModule, "on_validation_epoch_end", end)
        train(compose_config(tiny_overrides(tmp_path) + ["weight_average_decay=0.5"]))
    assert during and all(during), "validation must run the average"
    assert after and all(after), "training must go on with the weights as trained"


def test_a_checkpoint_of_an_averaging_run_resumes_in_a_run_that_does_not_average(tmp_path: Path) -> None:
    train(compose_config(tiny_overrides(tmp_path / "a") + ["weight_average_decay=0.5"]))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    trained = torch.load(last, weights_only=True)[_AVERAGE_KEY]["training_weights"]
    with _state_at_fit_start() as seen:
        result = train(compose_config(tiny_overrides(tmp_path / "b") + [f"ckpt_path={last}", "trainer.max_steps=5"]))
    assert result["steps"] == 5 and "average" not in seen
    assert all(torch.equal(seen["weights"][k], v) for k, v in trained.items()), "resumed from the average"
    resumed = torch.load(tmp_path / "b" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert _AVERAGE_KEY not in resumed


def test_a_checkpoint_written_while_the_average_validates_still_holds_the_weights_as_trained() -> None:
    from stylenet.losses.perceptual import build_perceptual_loss
    from stylenet.networks.transformer import TransformerNet
    from stylenet.training.module import StyleTransferModule

    network = TransformerNet(width=0.25, num_residual_blocks=1)
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loss = build_perceptual_loss(style, "random", ["relu2_2"], ["relu1_1"], 1.0, 10.0, 1.0)
    module = StyleTransferModule(network, loss, torch.optim.Adam, {"name": "t"}, weight_average_decay=0.9)
    module.on_fit_start()
    _set(network, 3.0)  # trained on; the average still holds the start
    average = {k: v.clone() for k, v in module.weight_average.average.items()}
    module.on_validation_epoch_start()
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    module.on_validation_epoch_end()
    saved = checkpoint[_AVERAGE_KEY]["training_weights"]
    assert all(torch.equal(saved[k], network.state_dict()[k]) for k in saved)
    assert all(torch.equal(checkpoint["state_dict"][f"network.{k}"], v) for k, v in average.items())
    assert any(not torch.equal(saved[k], average[k]) for k in saved)


def test_the_weights_as_trained_can_be_written_as_a_checkpoint_of_their_own(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import REPO

    train(compose_config(tiny_overrides(tmp_path) + ["weight_average_decay=0.5"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    script = [sys.executable, str(REPO / "scripts" / "trained_weights.py")]
    done = subprocess.run([*script, str(last), str(tmp_path / "trained.ckpt")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trained = torch.load(last, weights_only=True)[_AVERAGE_KEY]["training_weights"]
    network, _ = load_lightning_checkpoint(tmp_path / "trained.ckpt")
    assert all(torch.equal(v, trained[k]) for k, v in network.state_dict().items())
    again = subprocess.run([*script, str(last), str(tmp_path / "trained.ckpt")], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr  # never written over
    plain = subprocess.run(
        [*script, str(tmp_path / "trained.ckpt"), str(tmp_path / "x.ckpt")], capture_output=True, text=True
    )
    assert plain.returncode == 2 and "not a checkpoint of a run that averages" in plain.stderr
