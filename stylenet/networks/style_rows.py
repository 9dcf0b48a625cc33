"""Moving styles between networks through their instance-norm rows.

In a network of several styles only the instance norms' scale and shift differ between styles
(`ConditionalInstanceNorm`, one row per style). So a style or a blend can be baked into a
plain single-style network (same output, a single-style network's speed), and a style learnt
by training only the norms of such a network can be appended to the table as a new row.
"""

from __future__ import annotations

import torch
from torch import nn

from stylenet.networks.transformer import ConditionalInstanceNorm, InstanceNorm, TransformerNet


def norm_names(network: TransformerNet) -> list[str]:
    """The names of `network`'s instance norms (plain or conditional): the same in every style count."""
    return [name for name, m in network.named_modules() if isinstance(m, (InstanceNorm, ConditionalInstanceNorm))]


def norm_parameters(network: TransformerNet) -> list[nn.Parameter]:
    """The scale and shift of every instance norm: all that differs between styles."""
    return [p for name in norm_names(network) for p in network.get_submodule(name).parameters()]


def _norm_keys(network: TransformerNet) -> set[str]:
    return {f"{name}.{param}" for name in norm_names(network) for param in ("weight", "bias")}


def _rebuilt(network: TransformerNet, num_styles: int, state: dict[str, torch.Tensor]) -> TransformerNet:
    out = TransformerNet(**{**network.config.to_dict(), "num_styles": num_styles})
    out.load_state_dict(state)
    return out.to(next(network.parameters()).device).train(network.training)


def bake_style(network: TransformerNet, weights: torch.Tensor) -> TransformerNet:
    """A single-style network (a new one) computing `network(x, weights)` for a blend `weights` (S,) of its styles.

    Exact: instance norm's scale and shift enter linearly, so the blend of rows is one row."""
    weights = weights.detach().to(torch.float32).cpu()
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    if network.num_styles > 1:
        for key in _norm_keys(network):
            state[key] = weights @ state[key].float()  # (S,) @ (S, C) -> (C,)
    return _rebuilt(network, 1, state)


def append_style(base: TransformerNet, trained: TransformerNet, shared_trained: bool = False) -> TransformerNet:
    """`base`'s styles plus the one style of `trained`, a single-style network that shares all of `base`'s
    weights but the norms (trained from `bake_style(base, ...)` with everything else frozen).

    `shared_trained`: the shared weights trained too, and the result takes them from `trained` (the old styles
    keep their rows, on the new shared weights)."""
    if trained.num_styles != 1:
        raise ValueError("the network holding the new style must be a single-style network")
    base_state = {k: v.detach().cpu() for k, v in base.state_dict().items()}
    new_state = {k: v.detach().cpu() for k, v in trained.state_dict().items()}
    norms = _norm_keys(base)
    if shared_trained:
        state = {k: v if k in norms else new_state[k].to(v) for k, v in base_state.items()}
    else:
        changed = [
            k for k in base_state.keys() - norms if not torch.equal(base_state[k], new_state[k].to(base_state[k]))
        ]
        if changed:
            raise ValueError(f"{len(changed)} shared weights differ (e.g. {changed[0]}): only the norms may be trained")
        state = dict(base_state)
    for key in norms:
        rows = base_state[key] if base.num_styles > 1 else base_state[key].unsqueeze(0)  # (S, C)
        state[key] = torch.cat([rows, new_state[key].to(rows).unsqueeze(0)])  # (S + 1, C)
    return _rebuilt(base, base.num_styles + 1, state)
