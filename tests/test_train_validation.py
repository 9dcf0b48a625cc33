"""Mistakes in a training config stop the run before anything loads, in one line each."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, compose_config, tiny_overrides

from stylenet.checkpoint import CheckpointError
from stylenet.errors import ConfigError
from stylenet.train import check_config, train
from stylenet.validation import check_train_config

BAD = {
    "optimizer.lr=0": "optimizer.lr",
    "optimizer.lr=-1": "optimizer.lr",
    "optimizer.lr=abc": "optimizer.lr",
    "+optimizer.weight_decay=-1": "optimizer: Invalid weight_decay",
    "trainer.max_steps=abc": "trainer.max_steps",
    "trainer.max_steps=0": "trainer.max_steps",
    "trainer.max_steps=-5": "trainer.max_steps",
    "trainer.max_steps=2.5": "trainer.max_steps",
    "trainer.max_steps=null": "trainer.max_steps",
    "trainer.val_check_interval=-1": "trainer.val_check_interval",
    "trainer.val_check_interval=abc": "trainer.val_check_interval",
    "trainer.log_every_n_steps=abc": "trainer.log_every_n_steps",
    "trainer.num_nodes=0": "trainer.num_nodes",
    "trainer.devices=0": "trainer.devices",
    # Lightning refused these only once the Trainer was built, after the photos, in a traceback.
    "trainer.devices=abc": r"trainer.devices must be a whole number >= 1, -1 .every GPU., auto, or a list of GPU",
    "trainer.devices=[0,1]": r"trainer.devices=\[0, 1\] selects GPUs, but .*: on the CPU give a number of processes",
    "trainer.devices=-1": "trainer.devices=-1 selects GPUs, but",
    "compile=off": "compile must be auto, true or false, not 'off'",
    "channels_last=off": "channels_last must be auto, true or false, not 'off'",
    "+trainer.max_epochs=0": "trainer.max_epochs",
    "+trainer.accumulate_grad_batches=-2": "trainer.accumulate_grad_batches",
    "trainer.gradient_clip_val=-1": "trainer.gradient_clip_val",
    "trainer.gradient_clip_val=abc": "trainer.gradient_clip_val",
    "trainer.max_time=7": "trainer.max_time must be a duration, DD:HH:MM:SS",
    "trainer.max_time=00:07:00": "trainer.max_time must be a duration, DD:HH:MM:SS",
    "trainer.max_time=00:00:00:00": "trainer.max_time must be longer than 0",
    "trainer.max_time={fortnights:1}": "trainer.max_time must be a duration",
    "trainer.max_time={minutes:-1}": "trainer.max_time.minutes must be a number >= 0",
    "trainer.max_time={days:1e10}": "is too long a duration",
    "model.width=-1": "model.width",
    "model.width=abc": "model.width",
    "model.num_residual_blocks=abc": "model.num_residual_blocks",
    "model.num_residual_blocks=-1": "model.num_residual_blocks",
    "model.norm=foo": "model.norm must be instance, batch or none",
    "model.upsample=bicubic": "model.upsample must be nearest, bilinear or transposed",
    "model.downsample=max": "model.downsample must be strided or blur",
    "data.resize=16": "data.resize=16 is smaller than data.image_size=32",
    "data.batch_size=0": "data.batch_size",
    "data.crop_scale=[0.5,0.25]": r"data.crop_scale=\[0.5, 0.25\]: give the smallest and largest share",
    "data.crop_scale=2": "data.crop_scale=2: give the smallest",
    "data.image_size=abc": "data.image_size",
    "data.image_size=8": "data.image_size must be a whole number >= 16",
    "sample_size=0": "sample_size",
    "checkpoint_every_n_steps=abc": "checkpoint_every_n_steps",
    "checkpoint_keep=-2": "checkpoint_keep",
    "checkpoint_keep=abc": "checkpoint_keep",
    "style.size=-3": "style.size",
    "style.size=8": r"style.size=8 .starry.: the painting would be 8x\d px, and the loss network.s four halvings",
    # Sizes no machine holds: refused before the painting or the photos load, not by the OOM killer.
    "style.size=100000": "style.size=100000 .starry.: the painting at that size needs at least .* GB",
    "sample_size=30000": "sample_size=30000: stylising a validation photo at 30000x30000 px needs at least",
    "data.min_size=abc": "data.min_size must be a whole number >= 1, not 'abc'",
    "data.val_size=0": "data.val_size must be a whole number >= 1",
    "loss.style_weight=-1": "loss.style_weight",
    # Hydra's hint for a setting given without its group adds a key nothing reads: the run went on without it.
    "+max_steps=5": r"max_steps: not a setting; did you mean trainer.max_steps\?",
    "+lr=0.01": r"lr: not a setting; did you mean optimizer.lr\?",
    # The loss's own settings, named, before the photos are decoded (not from inside VGG after it).
    "loss.content_layers=[nosuch]": r"loss.content_layers: unknown VGG19 layer.s. \['nosuch'\]",
    "loss.style_layers=[relu1_1,relu9_9]": r"loss.style_layers: unknown VGG19 layer.s. \['relu9_9'\]",
    "loss.style_layer_weights=[1,2]": "loss.style_layer_weights has 2 values for 5 style layers",
    "loss.vgg_weights=nosuch.pth": "loss.vgg_weights=nosuch.pth: no such file",
    "+loss.foo=1": "loss.foo: not a setting of the loss",
    "loss.content_layers=relu4_2": r"loss.content_layers=relu4_2: give a list of VGG19 layer names, e.g. \[relu4_2\]",
    "seed=abc": "seed",
    "lr_schedule=linear": "lr_schedule must be constant or cosine",
    # The sample is stylised after training: too small, it stopped the run there with no model kept.
    "sample_size=4": "sample_size must be a whole number >= 8, not 4",
    # A style's name becomes the kept model's file name: a path in it wrote elsewhere, over any file.
    "style.name=../../stylenet/pretrained/paintings": r"style.name='../../stylenet/pretrained/paintings': a style's",
    "style.name=sub/mine": r"style.name='sub/mine': a style's name is a file name",
    "style.name=''": r"style.name='': a style's name",
    "style.name=.hidden": r"style.name='.hidden': a style's name",
    "style.name='a=b'": r"style.name='a=b': a style's name",
    # A misspelt style key was ignored; a setting of another photo source, too (the run used the demo photos).
    "+style.style_weigth=3": r"style.style_weigth: not a style setting; did you mean style.style_weight\?",
    "+data.root=/photos": "data.root is read with data=folder, and this run uses data=demo: add data=folder",
    "+data.name=coco": "data.name is read with data=hub, and this run uses data=demo: add data=hub",
}


@pytest.mark.parametrize("override", BAD)
def test_a_bad_setting_stops_train_in_one_line_before_anything_loads(
    override: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stylenet.train

    def no_loading(*args, **kwargs):
        raise AssertionError("the painting was loaded before the config was checked")

    monkeypatch.setattr(stylenet.train, "load_style_image", no_loading)
    with pytest.raises(ConfigError, match=BAD[override].replace("(", r"\(")) as stopped:
        train(compose_config(tiny_overrides(tmp_path) + [override]))
    assert "\n" not in str(stopped.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "kept").exists()


def test_a_kept_models_folder_that_refuses_files_is_found_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stylenet.atomic_write

    def refuse(*args, **kwargs):  # a read-only mount, or permissions: the folder exists, a write fails
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(stylenet.atomic_write.tempfile, "TemporaryFile", refuse)
    with pytest.raises(ConfigError, match=r"paths.kept_models_dir=.*kept: cannot write in .* \(Permission denied\)"):
        check_config(compose_config(tiny_overrides(tmp_path)))


def test_a_transposed_network_with_export_formats_is_refused_saying_why(tmp_path: Path) -> None:
    cfg = compose_config(tiny_overrides(tmp_path) + ["model.upsample=transposed", "export.formats=[onnx]"])
    with pytest.raises(ConfigError, match=r"export.formats=\['onnx'\]: only model.upsample=nearest .*torch.export"):
        check_config(cfg)
    check_config(compose_config(tiny_overrides(tmp_path) + ["model.upsample=transposed"]))  # no export: fine


@pytest.mark.parametrize(
    "override",
    [
        "trainer.val_check_interval=0.5",
        "trainer.num_sanity_val_steps=-1",
        "trainer.devices=auto",
        "trainer.devices=1",
        "compile=true",
        "channels_last=auto",
        "data.resize=48",
        "data.resize=32",
        "model.num_residual_blocks=0",
        "model.width=2",
        "trainer.max_steps=1e3",
        "seed=null",
        "lr_schedule=cosine",
        "data.crop_scale=[0.25,1.0]",
    ],
)
def test_good_settings_pass(override: str, tmp_path: Path) -> None:
    check_config(compose_config(tiny_overrides(tmp_path) + [override]))


def _no_gpu(monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)


@pytest.mark.parametrize("accelerator", ["auto", "cpu"])
def test_more_cpu_processes_than_cores_are_told_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, accelerator: str
) -> None:
    _no_gpu(monkeypatch, cores=2)
    cfg = compose_config([*tiny_overrides(tmp_path), f"trainer.accelerator={accelerator}", "trainer.devices=4"])
    with caplog.at_level(logging.WARNING, logger="stylenet.training.devices"):
        check_config(cfg)
    assert [r.getMessage() for r in caplog.records] == [
        "trainer.devices=4 starts 4 training processes on the CPU (torch sees no GPU here), which has 2 core(s) "
        "for this run: each gets less than a core; trainer.devices=2 or fewer trains faster"
    ]


def test_cpu_processes_within_the_cores_train_with_a_warning_where_gpus_were_left_to_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _no_gpu(monkeypatch, cores=2)
    with caplog.at_level(logging.WARNING, logger="stylenet.training.devices"):
        check_config(compose_config([*tiny_overrides(tmp_path), "trainer.accelerator=auto", "trainer.devices=2"]))
    assert [r.getMessage() for r in caplog.records] == [
        "trainer.devices=2: torch sees no GPU here, so the 2 processes train on the CPU"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stylenet.training.devices"):  # chosen: nothing to tell
        check_config(compose_config([*tiny_overrides(tmp_path), "trainer.devices=2"]))
    assert not caplog.records


@pytest.mark.parametrize(
    ("devices", "refused"),
    [
        ("[0,1]", None),
        ("-1", None),
        ("2", None),
        ("'0,1'", None),
        ("[0,5]", r"trainer.devices=\[0, 5\]: torch sees 2 GPU.s. here \(indices 0 to 1\)"),
        ("3", r"trainer.devices=3: torch sees 2 GPU.s. here"),
    ],
)
def test_gpu_devices_are_checked_against_the_gpus_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, devices: str, refused: str | None
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = compose_config([*tiny_overrides(tmp_path), "trainer.accelerator=auto", f"trainer.devices={devices}"])
    if refused is None:
        check_train_config(cfg)
    else:
        with pytest.raises(ConfigError, match=refused):
            check_train_config(cfg)


def test_a_value_added_for_settings_to_read_is_not_taken_for_a_slip(tmp_path: Path) -> None:
    # Named like data.image_size, but data.image_size reads it: kept, as `+foo=1` values are.
    check_config(compose_config(tiny_overrides(tmp_path) + ["+image_size=48", "data.image_size=${image_size}"]))
    with pytest.raises(ConfigError, match=r"image_size: not a setting; did you mean data.image_size\?"):
        check_config(compose_config(tiny_overrides(tmp_path) + ["+image_size=48"]))


def _finished_checkpoint(tmp_path: Path, step: int) -> Path:
    """What check_config reads from a Lightning checkpoint: stylenet's rebuild info and the step reached."""
    path = tmp_path / "last.ckpt"
    torch.save({"global_step": step, "state_dict": {}, "stylenet": {"model": {}, "style": {"name": "starry"}}}, path)
    return path


@pytest.mark.parametrize("max_steps", [4, 3])
def test_resuming_a_finished_run_says_there_is_nothing_to_train_and_keeps_the_model(
    tmp_path: Path, max_steps: int
) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "starry.pt").write_bytes(b"the kept model")
    ckpt = _finished_checkpoint(tmp_path, step=4)
    cfg = compose_config(tiny_overrides(tmp_path) + [f"ckpt_path={ckpt}", f"trainer.max_steps={max_steps}"])
    with pytest.raises(ConfigError, match=r"already at step 4 .*nothing to train.*trainer.max_steps to more than 4"):
        train(cfg)
    assert [p.name for p in kept.iterdir()] == ["starry.pt"] and (kept / "starry.pt").read_bytes() == b"the kept model"
    assert not (tmp_path / "run").exists()


def test_resuming_from_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    cfg = compose_config(tiny_overrides(tmp_path) + [f"ckpt_path={tmp_path / 'notes.ckpt'}"])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        train(cfg)


def test_resuming_from_a_run_folder_names_the_checkpoint_in_it(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    (earlier / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"is a folder, not a checkpoint \(runs keep theirs"):
        train(compose_config(tiny_overrides(tmp_path) + [f"ckpt_path={earlier}"]))
    (earlier / "checkpoints" / "last.ckpt").write_bytes(b"")
    last = earlier / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=f"is a folder, not a checkpoint; did you mean ckpt_path={last}"):
        train(compose_config(tiny_overrides(tmp_path) + [f"ckpt_path={earlier}"]))


# --- through `python train.py`: one line on stderr, and no empty run folder left behind ---


def _run_train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optimizer.lr=-1", "optimizer.lr"),
        pytest.param("trainer.max_steps=abc", "trainer.max_steps", marks=pytest.mark.slow),
        pytest.param("model.norm=foo", "model.norm", marks=pytest.mark.slow),
    ],
)
def test_cli_refuses_in_one_line_and_leaves_no_run_folder(tmp_path: Path, override: str, named: str) -> None:
    line = _one_line(_run_train(tmp_path, override))
    assert line.startswith("error: ") and named in line
    assert list(tmp_path.iterdir()) == [], "outputs/<style>/<date>/ was left behind"


@pytest.mark.slow
def test_cli_never_removes_a_run_folder_that_holds_results(tmp_path: Path) -> None:
    results = tmp_path / "earlier_run"
    results.mkdir()
    (results / "starry.pt").write_bytes(b"a model")
    _one_line(_run_train(tmp_path, "optimizer.lr=0", f"hydra.run.dir={results}"))
    assert (results / "starry.pt").read_bytes() == b"a model"

    logged = tmp_path / "logged_run"  # only an earlier run's log and config: still someone's record
    (logged / ".hydra").mkdir(parents=True)
    (logged / "train.log").write_text("trained to step 40000\n")
    _one_line(_run_train(tmp_path, "optimizer.lr=0", f"hydra.run.dir={logged}"))
    assert (logged / "train.log").read_text().startswith("trained to step 40000")


def test_an_experiment_file_without_its_package_line_is_refused(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    cfg = compose_config(tiny_overrides(tmp_path))
    OmegaConf.set_struct(cfg, False)
    cfg.experiment = {"checkpoint_every_n_steps": 1}  # what Hydra makes of a file lacking `# @package _global_`
    with pytest.raises(ConfigError, match="start the file with the line `# @package _global_`"):
        check_config(cfg)


def test_a_style_file_of_a_several_style_run_is_checked_by_name(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "configs" / "style").mkdir(parents=True)  # a configs/ folder in the working directory
    (tmp_path / "configs" / "style" / "mine.yaml").write_text("name: mine\nimage: a.jpg\nsize: 64\nstyle_weight: 5\n")
    monkeypatch.chdir(tmp_path)
    cfg = compose_config(tiny_overrides(tmp_path) + ["+styles=[starry,mine]"])
    with pytest.raises(ConfigError, match=r"configs/style/mine.yaml: no content_weight; a style sets name, image,"):
        check_config(cfg)
