"""train(cfg) end to end, through Hydra's compose, on tiny settings."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import compose_config, tiny_overrides
from omegaconf import DictConfig, open_dict
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.strategies import SingleDeviceStrategy
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.optim.optimizer import register_optimizer_step_post_hook

from stylenet.checkpoint import load_inference_checkpoint, load_lightning_checkpoint
from stylenet.errors import ConfigError, DataError, StylenetError
from stylenet.train import train
from stylenet.training.module import NonFiniteLossError


def _events(run: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def _tags_by_plugin(run: Path) -> dict[str, set[str]]:
    """{plugin name ("scalars", "images", "text", "hparams"): tags} across a run's event files."""
    tags: dict[str, set[str]] = {}
    for events in sorted((run / "tensorboard").glob("events.*")):
        for event in event_file_loader.EventFileLoader(str(events)).Load():
            for value in event.summary.value:
                tags.setdefault(value.metadata.plugin_data.plugin_name, set()).add(value.tag)
    return tags


def test_train_writes_checkpoints_logs_samples_and_a_model(tiny_cfg, tmp_path: Path) -> None:
    result = train(tiny_cfg)
    run = tmp_path / "run"
    assert result["steps"] == 4
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "sample.png").is_file() and (run / "samples" / "step_000002.png").is_file()

    tags = _tags_by_plugin(run)
    for stage in ("train", "val"):
        for name in ("content_loss", "style_loss", "tv_loss", "total_loss"):
            assert f"{stage}/{name}" in tags["scalars"]
    assert "train/images_per_sec" in tags["scalars"] and any(t.startswith("lr-") for t in tags["scalars"])
    assert "val/stylized" in tags["images"]
    assert any(t.startswith("config") for t in tags["text"])
    assert "_hparams_/session_start_info" in tags["hparams"]

    network, metadata = load_inference_checkpoint(tmp_path / "kept" / "starry.pt")
    assert metadata["style"]["name"] == "starry" and metadata["steps"] == 4
    assert set(metadata["val"]) >= {"val/total_loss", "val/style_loss"}
    assert metadata["model"]["width"] == 0.25
    with torch.no_grad():
        assert network(torch.rand(1, 3, 20, 27)).shape == (1, 3, 20, 27)
    # Safe to open from untrusted sources: no pickled objects inside.
    torch.load(tmp_path / "kept" / "starry.pt", weights_only=True)


def test_a_run_with_crops_at_many_scales_keeps_checkpoints_that_load_without_pickle(tmp_path: Path) -> None:
    train(compose_config(tiny_overrides(tmp_path) + ["data.crop_scale=[0.5,1.0]"]))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuple(checkpoint["datamodule_hyper_parameters"]["crop_scale"]) == (0.5, 1.0)


def test_lightning_checkpoint_holds_no_loss_network_but_rebuild_info(tiny_cfg, tmp_path: Path) -> None:
    train(tiny_cfg)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["state_dict"] and not any(k.startswith("loss.") for k in checkpoint["state_dict"])
    assert checkpoint["stylenet"]["model"]["num_residual_blocks"] == 1
    assert checkpoint["optimizer_states"], "resume needs the optimizer state"
    network, metadata = load_lightning_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    kept, _ = load_inference_checkpoint(tmp_path / "kept" / "starry.pt")
    assert metadata["steps"] == 4 and metadata["style"]["name"] == "starry"
    assert all(torch.equal(v, kept.state_dict()[k]) for k, v in network.state_dict().items())


@pytest.mark.parametrize(
    ("keep", "kept"), [("1", ["step_000004.ckpt"]), ("-1", ["step_000002.ckpt", "step_000004.ckpt"])]
)
def test_checkpoint_keep_sets_how_many_periodic_checkpoints_stay(tmp_path: Path, keep: str, kept: list[str]) -> None:
    train(compose_config(tiny_overrides(tmp_path) + [f"checkpoint_keep={keep}"]))
    periodic = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*.ckpt"))
    assert periodic == kept


def test_resume_continues_the_global_step(tmp_path: Path) -> None:
    first = compose_config(tiny_overrides(tmp_path / "a"))
    train(first)
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    resumed = compose_config(tiny_overrides(tmp_path / "b") + [f"ckpt_path={last}", "trainer.max_steps=6"])
    result = train(resumed)
    assert result["steps"] == 6
    train_steps = [e.step for e in _events(tmp_path / "b" / "run").Scalars("train/total_loss")]
    assert min(train_steps) >= 4, "a resumed run must not start again from step 0"


def test_a_time_budget_ends_training_before_max_steps_and_keeps_the_model(tmp_path: Path) -> None:
    # A budget of a millisecond is spent by the first step, whatever the machine.
    budget = ["trainer.max_steps=1000", "trainer.max_time={milliseconds:1}"]
    result = train(compose_config(tiny_overrides(tmp_path / "a") + budget))
    assert result["out_of_time"] and result["steps"] == 1
    _, metadata = load_inference_checkpoint(result["model"])
    assert metadata["steps"] == 1
    assert not train(compose_config(tiny_overrides(tmp_path / "b")))["out_of_time"]  # max_steps came first


def test_a_resume_whose_time_budget_is_spent_is_refused_and_trains_on_without_one(tmp_path: Path) -> None:
    budget = ["trainer.max_steps=1000", "trainer.max_time={milliseconds:1}"]
    train(compose_config(tiny_overrides(tmp_path / "a") + budget))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    again = compose_config(tiny_overrides(tmp_path / "b") + [*budget, f"ckpt_path={last}"])
    with pytest.raises(
        ConfigError,
        match=r"has already trained for .*, all of this run's time budget \(0:00:00.001000, trainer.max_time\)",
    ):
        train(again)
    assert not (tmp_path / "b" / "run").exists()
    resumed = compose_config(tiny_overrides(tmp_path / "c") + [f"ckpt_path={last}", "trainer.max_steps=3"])
    assert train(resumed)["steps"] == 3


def test_an_existing_kept_model_is_not_lost(tiny_cfg, tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "starry.pt").write_bytes(b"an older model")
    train(tiny_cfg)
    older = [p for p in kept.iterdir() if p.name != "starry.pt"]
    assert len(older) == 1 and older[0].read_bytes() == b"an older model"
    load_inference_checkpoint(kept / "starry.pt")


def test_a_model_that_cannot_be_written_is_one_line_and_keeps_the_file_it_would_replace(
    tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet import checkpoint

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "starry.pt").write_bytes(b"an older model")
    write = checkpoint._save

    def disk_full(payload: dict[str, Any], path: Path) -> None:
        if path.parent != kept:
            return write(payload, path)
        path.write_bytes(b"the first half of a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "_save", disk_full)
    with pytest.raises(StylenetError) as failed:
        train(tiny_cfg)
    run_model = tmp_path / "run" / "starry.pt"
    assert str(failed.value) == (
        f"could not write {kept / 'starry.pt'} (No space left on device); the run's copy is {run_model}"
    )
    assert [p.name for p in kept.iterdir()] == ["starry.pt"] and (kept / "starry.pt").read_bytes() == b"an older model"
    load_inference_checkpoint(run_model)


def test_a_run_folder_holding_checkpoints_is_refused_unless_resumed_there(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path)
    train(compose_config(overrides))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    with pytest.raises(ConfigError, match=f"holds another run's checkpoints: resume that run with ckpt_path={last}"):
        train(compose_config([*overrides, "seed=5"]))
    assert last.read_bytes() == before  # nothing written over
    assert train(compose_config([*overrides, f"ckpt_path={last}", "trainer.max_steps=6"]))["steps"] == 6


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("trainer.precision=bf17", "trainer.precision=bf17: use one of auto, "),
        ("trainer.accelerator=npu", "trainer.accelerator=npu: use one of auto, cpu, gpu"),
        ("+trainer.max_stepz=3", "trainer.max_stepz: not a setting of Lightning's Trainer"),
    ],
)
def test_trainer_settings_lightning_would_refuse_stop_before_the_photos_are_read(
    tmp_path: Path, bad: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(compose_config([*tiny_overrides(tmp_path), bad]))
    assert not (tmp_path / "run").exists()


def test_a_gpu_accelerator_without_a_gpu_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu: torch sees no CUDA GPU here"):
        train(compose_config([*tiny_overrides(tmp_path), "trainer.accelerator=gpu"]))


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet.losses.perceptual import PerceptualLoss

    real_forward = PerceptualLoss.forward
    training_calls = []

    def diverging(self, output, content, styles=None):
        terms = real_forward(self, output, content, styles)
        training_calls.append(1)
        if len(training_calls) >= 4:  # the 4th step (index 3), after the step-2 checkpoint
            terms.style = terms.style * float("nan")
        return terms

    monkeypatch.setattr(PerceptualLoss, "forward", diverging)
    with open_dict(tiny_cfg):
        tiny_cfg.trainer.val_check_interval = 100
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*clip the gradients \(e.g. trainer.gradient_clip_val=50\)"):
        train(tiny_cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_bad_inputs_stop_before_training(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        train(compose_config(tiny_overrides(tmp_path) + ["data=folder", f"data.root={tmp_path / 'nowhere'}"]))
    with pytest.raises(ConfigError, match="ckpt_path"):
        train(compose_config(tiny_overrides(tmp_path) + [f"ckpt_path={tmp_path / 'none.ckpt'}"]))
    with pytest.raises(ConfigError, match="style.image"):
        train(compose_config(tiny_overrides(tmp_path) + ["style=custom"]))
    with pytest.raises(ConfigError, match="STYLENET_STYLE_DIR"):
        train(compose_config(tiny_overrides(tmp_path) + ["style=custom", "style.image=no_such_painting.jpg"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_training_on_a_folder_with_broken_images_counts_and_goes_on(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    (photos / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40 + i, 48, 3), dtype=np.uint8)).save(photos / "train" / f"p{i}.jpg")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.png").write_text("not an image")
    Image.new("RGB", (4, 4)).save(photos / "tiny.png")
    cfg = compose_config(tiny_overrides(tmp_path) + ["data=folder", f"data.root={photos}", "data.num_workers=0"])
    result = train(cfg)
    assert result["steps"] == 4
    assert 0 < result["skipped_images"] <= 3 * 4  # counted each time a bad file is drawn


def test_training_can_export_single_pass_models_at_the_end(tmp_path: Path) -> None:
    from stylenet import load_model

    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "starry.onnx").write_bytes(b"an older export")
    result = train(compose_config(tiny_overrides(tmp_path) + ["export.formats=[onnx,pt2]"]))
    assert [p.name for p in result["exported"]] == ["starry.onnx", "starry.pt2"]
    older = list((tmp_path / "kept").glob("starry.*.onnx"))
    assert len(older) == 1 and older[0].read_bytes() == b"an older export", "an existing export was written over"
    eager = load_model(result["model"], precision="fp32")
    images = torch.rand(1, 3, 21, 30)
    lightning_checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    for path in [*result["exported"], lightning_checkpoint]:
        assert (load_model(path, precision="fp32")(images) - eager(images)).abs().max() <= 1e-4


def test_a_finite_jump_of_the_loss_stops_the_run_like_a_nan(
    tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet.losses.perceptual import PerceptualLoss
    from stylenet.training.module import StyleTransferModule

    real_forward = PerceptualLoss.forward
    calls = []

    def jumping(self, output, content, styles=None):
        terms = real_forward(self, output, content, styles)
        calls.append(1)
        if len(calls) == 4:  # the 4th step (index 3): finite, but 10^6 times the loss so far
            terms.style = terms.style * 1e6
        return terms

    monkeypatch.setattr(PerceptualLoss, "forward", jumping)
    monkeypatch.setattr(StyleTransferModule, "JUMP_AFTER_STEPS", 1)
    with open_dict(tiny_cfg):
        tiny_cfg.trainer.val_check_interval = 100
    with pytest.raises(NonFiniteLossError, match="jumped over 100x its running mean, at step 3"):
        train(tiny_cfg)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2


def test_ordinary_ups_and_downs_of_the_loss_do_not_stop_a_run(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenet.losses.perceptual import PerceptualLoss
    from stylenet.training.module import StyleTransferModule

    real_forward = PerceptualLoss.forward
    calls = []

    def noisy(self, output, content, styles=None):
        terms = real_forward(self, output, content, styles)
        calls.append(1)
        terms.style = terms.style * (20.0 if len(calls) % 2 else 0.5)  # 40x swings, well under 100x the mean
        return terms

    monkeypatch.setattr(PerceptualLoss, "forward", noisy)
    monkeypatch.setattr(StyleTransferModule, "JUMP_AFTER_STEPS", 1)
    with open_dict(tiny_cfg):
        tiny_cfg.trainer.max_steps = 8
    assert train(tiny_cfg)["steps"] == 8


def test_images_per_sec_is_wall_time_from_one_step_end_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loader waits count (the time between steps); the step after a validation is not timed."""
    from types import SimpleNamespace

    from stylenet.training import callbacks

    clock = iter([10.0, 10.5, 20.0, 30.0, 30.25])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    logged: list[float] = []
    module = SimpleNamespace(log=lambda name, value, **_: logged.append(value))
    trainer = SimpleNamespace(world_size=2)
    batch = {"images": torch.zeros(4, 3, 8, 8)}
    throughput = callbacks.Throughput()

    def end() -> None:
        throughput.on_train_batch_end(trainer, module, None, batch, 0)

    end()  # the first step: nothing to time it from
    end()  # 0.5 s later: 4 images on each of 2 ranks
    throughput.on_validation_end(trainer, module)
    end()  # after a validation: not timed
    end()  # 10 s later, loader wait and all
    end()
    assert logged == [16.0, 0.8, 32.0]


def test_cosine_schedule_falls_to_zero_at_max_steps_also_when_a_resume_raises_them(tmp_path: Path) -> None:
    first = compose_config(tiny_overrides(tmp_path / "a") + ["lr_schedule=cosine"])
    train(first)
    rates = [e.value for e in _events(tmp_path / "a" / "run").Scalars("lr-Adam")]
    base = first.optimizer.lr
    # Steps 0-3 of 4: the rate at the start of each step, along a half cosine to 0 at step 4.
    assert rates == pytest.approx([base * 0.5 * (1 + math.cos(math.pi * step / 4)) for step in range(4)], rel=1e-5)
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    resumed = compose_config(
        tiny_overrides(tmp_path / "b") + ["lr_schedule=cosine", f"ckpt_path={last}", "trainer.max_steps=8"]
    )
    train(resumed)
    # Steps 4-7 of 8 (the monitor labels them one later after a resume), from where the cosine to 8 is.
    rates = [e.value for e in _events(tmp_path / "b" / "run").Scalars("lr-Adam")]
    assert rates == pytest.approx([base * 0.5 * (1 + math.cos(math.pi * step / 8)) for step in range(4, 8)], rel=1e-5)
    # Resumed under the other schedule, the run would go on at the cosine's last rate: refused.
    constant = compose_config(tiny_overrides(tmp_path / "c") + [f"ckpt_path={last}", "trainer.max_steps=8"])
    with pytest.raises(ConfigError, match="trained with lr_schedule=cosine; resume with lr_schedule=cosine"):
        train(constant)


def test_cosine_schedule_follows_the_time_budget_where_that_ends_before_max_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock that moves 15 s with each finished step: the 60 s budget ends after 4 of the 100 steps.
    seen: dict[str, Any] = {}

    def keep_trainer(self: Timer, trainer: Any, *args: Any, **kwargs: Any) -> None:
        seen["trainer"] = trainer

    monkeypatch.setattr(Timer, "setup", keep_trainer)
    monkeypatch.setattr(Timer, "time_elapsed", lambda self, stage="train": 15.0 * seen["trainer"].global_step)
    cfg = compose_config(
        tiny_overrides(tmp_path) + ["lr_schedule=cosine", "trainer.max_steps=100", "trainer.max_time=00:00:01:00"]
    )
    train(cfg)
    rates = [e.value for e in _events(tmp_path / "run").Scalars("lr-Adam")]
    base = cfg.optimizer.lr
    # Each step's rate from the time spent when the step before took its optimizer step ((k - 1) / 4 of
    # the budget), not from max_steps (k / 100), which would leave the rate near its start.
    assert rates == pytest.approx(
        [base * 0.5 * (1 + math.cos(math.pi * max(step / 100, (step - 1) / 4, 0))) for step in range(4)], rel=1e-5
    )


def test_cosine_schedule_takes_the_budget_share_that_rank_0_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every rank steps at the rate of the share rank 0 read, whatever its own clock says: here rank 0
    # "sends" 0.9 of the budget spent while this process's clock has barely started.
    send = SingleDeviceStrategy.broadcast
    monkeypatch.setattr(
        SingleDeviceStrategy,
        "broadcast",
        lambda self, obj, src=0: 0.9 if isinstance(obj, float) else send(self, obj, src),
    )
    cfg = compose_config(tiny_overrides(tmp_path) + ["lr_schedule=cosine", "trainer.max_time=00:01:00:00"])
    train(cfg)
    rates = [e.value for e in _events(tmp_path / "run").Scalars("lr-Adam")]
    assert rates == pytest.approx([cfg.optimizer.lr * 0.5 * (1 + math.cos(math.pi * 0.9))] * 4, rel=1e-5)


def test_lightnings_own_precision_default_is_accepted(tmp_path: Path) -> None:
    assert train(compose_config([*tiny_overrides(tmp_path), "trainer.precision=null", "trainer.max_steps=1"]))


def _gradient_norms_at_each_step(cfg: DictConfig) -> list[float]:
    """The norm of all the network's gradients as each optimizer step used them."""
    norms: list[float] = []

    def record(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    handle = register_optimizer_step_post_hook(record)
    try:
        train(cfg)
    finally:
        handle.remove()
    return norms


def test_gradient_clipping_caps_each_steps_gradient_norm(tmp_path: Path) -> None:
    unclipped = _gradient_norms_at_each_step(compose_config(tiny_overrides(tmp_path / "a")))
    assert len(unclipped) == 4
    clip = min(unclipped) / 10  # below every step's norm: each one is clipped
    clipped = _gradient_norms_at_each_step(
        compose_config(tiny_overrides(tmp_path / "b") + [f"trainer.gradient_clip_val={clip}"])
    )
    assert clipped == pytest.approx([clip] * 4, rel=1e-3)
    # TensorBoard gets the norm before clipping: without it, the norm each step used.
    logged = [e.value for e in _events(tmp_path / "a" / "run").Scalars("train/grad_norm")]
    assert logged == pytest.approx(unclipped, rel=1e-4)
    assert all(e.value > 2 * clip for e in _events(tmp_path / "b" / "run").Scalars("train/grad_norm"))


def test_gradient_norms_script_lists_each_windows_median_and_largest(tmp_path: Path) -> None:
    import statistics
    import subprocess
    import sys

    from conftest import REPO

    train(compose_config(tiny_overrides(tmp_path)))
    logged = [e.value for e in _events(tmp_path / "run").Scalars("train/grad_norm")]
    script = [sys.executable, str(REPO / "scripts" / "gradient_norms.py")]
    done = subprocess.run([*script, str(tmp_path / "run"), "--window", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()[2:]]
    assert [row[0].strip() for row in rows] == ["0-1", "2-3"]
    for row, window in zip(rows, (logged[:2], logged[2:]), strict=True):
        assert float(row[2]) == pytest.approx(statistics.median(window), abs=0.06)
        assert float(row[3]) == pytest.approx(max(window), abs=0.06)
    wrong = subprocess.run([*script, str(tmp_path)], capture_output=True, text=True)
    assert wrong.returncode != 0 and "not a run folder" in wrong.stderr


def test_a_style_weight_of_zero_is_said(tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING", logger="stylenet.train"):
        train(compose_config(tiny_overrides(tmp_path) + ["style.style_weight=0", "trainer.max_steps=1"]))
    assert "starry: its style weight is 0, so the network learns no style, only to copy the photo" in caplog.text
