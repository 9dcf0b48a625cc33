"""Two-process DDP on CPU through the real entry point (Lightning re-launches train.py per rank)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_overrides

from stylenet.checkpoint import load_inference_checkpoint
from stylenet.training.weight_average import CHECKPOINT_KEY


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["loss.temporal_weight=5", "weight_average_decay=0.5"],
        ["lr_schedule=cosine", "trainer.max_time=00:01:00:00"],  # the budget's share, sent by rank 0: no hang
    ],
    ids=["perceptual", "with-temporal-term-and-weight-average", "cosine-within-a-time-budget"],
)
def test_two_process_cpu_ddp_trains_and_saves_once(tmp_path: Path, extra: list[str]) -> None:
    overrides = [o for o in tiny_overrides(tmp_path) if not o.startswith("paths.output_dir")] + extra
    command = [
        sys.executable,
        "train.py",
        *overrides,
        f"hydra.run.dir={tmp_path / 'run'}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.num_workers=0",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 4
    network, metadata = load_inference_checkpoint(tmp_path / "kept" / "starry.pt")
    assert metadata["steps"] == 4
    assert not list((tmp_path / "kept").glob("starry.*.pt")), "only rank 0 may write the kept model"
    if "weight_average_decay=0.5" in extra:  # the kept model is the average the checkpoint holds
        assert checkpoint[CHECKPOINT_KEY]["updates"] == 4
        saved = {k[len("network.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("network.")}
        assert all(torch.equal(v, saved[k]) for k, v in network.state_dict().items())
