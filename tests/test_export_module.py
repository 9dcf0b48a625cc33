"""export() works on its own copy: the caller's network keeps its device, dtype, mode and layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenet.inference.export import ExportError, export
from stylenet.networks.transformer import TransformerNet


def _state(network: TransformerNet) -> dict:
    weight = network.encoder[0][0][1].weight
    fast = [m.fast for m in network.modules() if hasattr(m, "fast")]
    return {
        "device": weight.device,
        "dtype": weight.dtype,
        "training": network.training,
        "channels_last": weight.is_contiguous(memory_format=torch.channels_last),
        "fast": fast,
    }


def _network(device: str) -> TransformerNet:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).use_fast_ops(True)
    return network.to(device=device, dtype=torch.bfloat16, memory_format=torch.channels_last).train()


def _export_and_compare(network: TransformerNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    moves = []
    monkeypatch.setattr(network, "_apply", lambda *args, **kwargs: moves.append(args))  # .cpu(), .to(), .float()
    before = _state(network)
    weights = {k: v.clone() for k, v in network.state_dict().items()}
    path = export(network, {"style": {"name": "t"}}, tmp_path, "pt2")
    assert not moves, "export() moved or converted the caller's network"
    assert _state(network) == before
    assert all(torch.equal(v, weights[k]) for k, v in network.state_dict().items())
    return path


def test_export_leaves_the_callers_network_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    network = _network("cpu")
    path = _export_and_compare(network, tmp_path, monkeypatch)
    program = torch.export.load(path).module()
    images = torch.rand(1, 3, 20, 27)
    reference = TransformerNet(width=0.25, num_residual_blocks=1)
    reference.load_state_dict(network.state_dict())
    with torch.no_grad():
        assert torch.allclose(program(images), reference.eval()(images), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_export_leaves_a_gpu_network_on_the_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    network = _network("cuda")
    _export_and_compare(network, tmp_path, monkeypatch)
    assert network.encoder[0][0][1].weight.is_cuda


def test_transposed_networks_say_why_they_cannot_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="upsample=nearest"):
        export(TransformerNet(width=0.25, num_residual_blocks=1, upsample="transposed"), {}, tmp_path, "pt2")
