"""An exponential moving average of a network's weights, the network a run keeps.

At a small batch the weights of one step differ from the next by much of what separates a good
model from a poor one: one run's held-out loss swung 10-20% between checkpoints 2,000 steps apart
(docs/multistyle.md). The average of the last steps' weights does not swing like that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

# A Lightning checkpoint of a run that averages: the weights as trained, and the average's count.
CHECKPOINT_KEY = "stylenet_weight_average"


class WeightAverage:
    """avg <- d * avg + (1 - d) * weights after each step, with d = min(decay, (1 + n) / (10 + n)) at
    update n: early on the average follows the weights closely instead of holding their random start."""

    def __init__(self, network: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be between 0 and 1, not {decay!r}")
        self.decay = decay
        self.updates = 0
        self.average = {name: value.detach().clone() for name, value in _weights(network).items()}

    def effective_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, network: torch.nn.Module) -> None:
        weights = _weights(network)
        names = list(self.average)
        torch._foreach_lerp_(
            [self.average[name] for name in names],
            [weights[name].detach() for name in names],
            1.0 - self.effective_decay(),
        )
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, network: torch.nn.Module) -> None:
        """Writes the average into `network`'s own tensors (their identity kept: compiled code still sees them)."""
        _write(network, self.average)

    def swap_in(self, network: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Puts the average into `network`; returns the weights it held, for `swap_out`."""
        own = {name: value.detach().clone() for name, value in _weights(network).items()}
        self.copy_to(network)
        return own

    @staticmethod
    @torch.no_grad()
    def swap_out(network: torch.nn.Module, own: dict[str, torch.Tensor]) -> None:
        """Gives `network` back the weights `swap_in` took from it."""
        _write(network, own)

    @contextlib.contextmanager
    def swapped_in(self, network: torch.nn.Module) -> Iterator[None]:
        """`network` holds the average inside the block and its own weights again after it."""
        own = self.swap_in(network)
        try:
            yield
        finally:
            self.swap_out(network, own)

    def put_in_checkpoint(self, checkpoint: dict[str, Any], prefix: str, own: dict[str, torch.Tensor] | None) -> None:
        """Makes the average the network of a Lightning checkpoint (`prefix`: its keys' in the state dict), so
        that every reader of the file gets it, and keeps the weights as trained beside it for resuming.
        `own`: the weights set aside by `swap_in` when the network holds the average (during validation)."""
        state = checkpoint["state_dict"]
        training = {}
        for name, value in self.average.items():
            training[name] = state[prefix + name] if own is None else own[name]
            state[prefix + name] = value.detach().clone()
        checkpoint[CHECKPOINT_KEY] = {"decay": self.decay, "updates": self.updates, "training_weights": training}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state["average"].items():
            self.average[name].copy_(value)
        self.updates = int(state["updates"])


def _weights(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every floating-point parameter and buffer by its state-dict name (what a saved model holds)."""
    return {name: value for name, value in network.state_dict(keep_vars=True).items() if value.is_floating_point()}


def _write(network: torch.nn.Module, values: dict[str, torch.Tensor]) -> None:
    weights = _weights(network)
    for name, value in values.items():
        weights[name].copy_(value)


def take_from_checkpoint(checkpoint: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """Undoes `put_in_checkpoint` before the checkpoint loads: its network becomes the weights as trained
    again; returns the average as `load_state_dict` takes it (None for a checkpoint of a run that did not average)."""
    saved = checkpoint.pop(CHECKPOINT_KEY, None)
    if saved is None:
        return None
    state = checkpoint["state_dict"]
    average = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    for name, value in saved["training_weights"].items():
        state[prefix + name] = value
    return {"updates": saved["updates"], "average": average}
