"""What only `python train.py` does to its process: memory reuse as set, and Lightning's noise quieted."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, tiny_overrides

from stylenet import hardware
from stylenet.errors import ConfigError
from stylenet.hardware import wants_memory_reuse
from stylenet.run_folder import planned_folder, run_folder_problem, with_run_folder_of_output_dir
from stylenet.sweep_check import first_bad_job, sweep_jobs
from stylenet.train import train

train_entry = runpy.run_path(str(REPO / "train.py"), run_name="train_entry")  # its functions, not its main


@pytest.mark.parametrize(
    ("setting", "repeated", "expected"),
    [("auto", True, True), ("auto", False, False), ("on", False, True), ("off", True, False)]
    + [(True, False, True), (False, True, False)],  # YAML reads a bare on/off as a boolean
)
def test_memory_reuse_setting(setting, repeated: bool, expected: bool) -> None:
    assert wants_memory_reuse(setting, repeated_work=repeated) is expected


def test_memory_reuse_refuses_other_values() -> None:
    with pytest.raises(ConfigError, match="memory_reuse must be auto, on or off, not 'sometimes'"):
        wants_memory_reuse("sometimes", repeated_work=True)


class _NoMallopt:
    """Stands in for ctypes in stylenet.hardware: any use would change this process's allocator."""

    def CDLL(self, *args, **kwargs):  # noqa: N802 (ctypes' name)
        raise AssertionError("train(cfg) reached for the C library's allocator settings")


def test_train_in_process_never_changes_the_allocator(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(hardware, "keep_freed_memory", lambda *args: calls.append(args))
    monkeypatch.setattr(hardware, "ctypes", _NoMallopt())
    assert tiny_cfg.memory_reuse == "auto"  # the default that turns it on for `python train.py`
    train(tiny_cfg)
    assert calls == []


# `python train.py` with train() stubbed: shows what the entry point did before handing over.
_ENTRY = textwrap.dedent(
    """
    import runpy, sys
    import stylenet.hardware, stylenet.train
    calls = []
    stylenet.hardware.keep_freed_memory = lambda enabled=True: calls.append(enabled) or True
    stylenet.train.train = lambda cfg: print("keep_freed_memory calls:", calls)
    sys.argv = ["train.py", *sys.argv[1:]]
    runpy.run_path("train.py", run_name="__main__")
    """
)


@pytest.mark.parametrize(
    ("setting", "calls"), [(None, [True]), pytest.param("on", [True], marks=pytest.mark.slow), ("off", [])]
)
def test_the_entry_point_applies_memory_reuse_as_set(tmp_path: Path, setting: str | None, calls: list) -> None:
    overrides = [f"hydra.run.dir={tmp_path / 'run'}"] + ([f"memory_reuse={setting}"] if setting else [])
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY, *overrides], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert f"keep_freed_memory calls: {calls}" in done.stdout, done.stderr


def test_the_entry_point_refuses_a_bad_memory_reuse_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY, "memory_reuse=sometimes", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: memory_reuse must be auto, on or off, not 'sometimes'"
    ]
    assert not (tmp_path / "run").exists()


# Lightning notices that told a user nothing, on every run.
_NOISE = ("module(s) in eval mode", "LeafSpec", "Tip:", "does not have many workers", "not supported by the model")


@pytest.mark.slow
def test_a_short_training_run_prints_no_lightning_noise(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            "experiment=quickstart",
            "data.image_size=32",
            "model.width=0.25",
            "model.num_residual_blocks=1",
            "loss.vgg_weights=random",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.kept_models_dir={tmp_path / 'kept'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert not [noise for noise in _NOISE if noise in output], output
    assert "trained to step 2" in output and "GPU available" in output  # what matters still shows


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("foo=1", "error: Could not override 'foo'. To append to your config use +foo=1"),
        ("style=starr", "error: style=starr: no such config; choose one of composition_vii, custom, scream, starry, "),
        ("style=[starry,wav]", "error: style=wav: no such config; choose one of composition_vii, custom, "),
        ("style=starry,wave", "error: Ambiguous value for argument 'style=starry,wave': style=[starry,wave] for a "),
        # Hydra's own hint, +data.root=..., would train on the demo photos: the way out is the folder source.
        ("data.root=/photos", "error: data.root is a setting of data=folder, not of this run's data: add data=folder"),
    ],
)
def test_what_hydra_would_refuse_is_one_line_before_a_run_dir_is_made(tmp_path: Path, override: str, line: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), override, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(line)
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        # The run folder is named after the style: without a name Hydra stopped in a traceback.
        (
            "noname",
            "image: a.jpg\nsize: 64\ncontent_weight: 1\nstyle_weight: 5\ntv_weight: 1\n",
            "error: style: no name; ",
        ),
        (
            "typo",
            "name: typo\nimage: a.jpg\nsize: 64\ncontent_weight: 1\nstyle_weigth: 5\ntv_weight: 1\n",
            "error: style.style_weigth: not a style setting; did you mean style.style_weight?",
        ),
        (
            "broken",
            "name: broken\nimage: [a, b\n",
            "error: a config file is not valid YAML: while parsing a flow sequence",
        ),
    ],
)
def test_a_style_file_with_a_mistake_is_one_line_before_a_run_dir_is_made(
    tmp_path: Path, name: str, text: str, line: str
) -> None:
    project = tmp_path / "project"  # a copy of the entry point and its configs, to add a user's style file to
    shutil.copytree(REPO / "configs", project / "configs")
    shutil.copy(REPO / "train.py", project / "train.py")
    (project / "configs" / "style" / f"{name}.yaml").write_text(text)
    done = subprocess.run(
        [sys.executable, str(project / "train.py"), f"style={name}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(line), done.stderr
    assert not (tmp_path / "outputs").exists()


def test_sweeps_and_extra_config_folders_are_left_to_hydra(tmp_path: Path) -> None:
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    (tmp_path / "extra" / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 3\n")
    assert (
        train_entry["_composition_error"]([f"hydra.searchpath=[file://{tmp_path / 'extra'}]", "experiment=mine"])
        is None
    )
    assert train_entry["_composition_error"](["hydra.mode=MULTIRUN", "style=starry,wave"]) is None
    assert train_entry["_composition_error"](["experiment=mine"]).startswith("experiment=mine: no such config")


@pytest.mark.parametrize(
    ("resume", "refusal"),
    [(False, "holds another run's checkpoints"), (True, "last.ckpt: not a readable checkpoint")],
)
def test_a_run_refused_in_an_earlier_runs_folder_leaves_its_record_as_it_was(
    tmp_path: Path, resume: bool, refusal: str
) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run's checkpoint")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    resumed = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"] if resume else []  # a damaged checkpoint
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "seed=5", f"hydra.run.dir={run}", f"paths.kept_models_dir={tmp_path}"]
        + resumed,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and refusal in done.stderr, done.stderr
    assert (run / ".hydra" / "config.yaml").read_text() == "seed: 0\n"
    assert (run / ".hydra" / "overrides.yaml").read_text() == "[]\n"
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml", "overrides.yaml"]


def test_an_output_dir_given_alone_is_also_the_run_folder() -> None:
    assert with_run_folder_of_output_dir(["paths.output_dir=runs/a", "seed=1"]) == [
        "paths.output_dir=runs/a",
        "seed=1",
        "hydra.run.dir=runs/a",
    ]
    both = ["paths.output_dir=runs/a", "hydra.run.dir=runs/b"]
    assert with_run_folder_of_output_dir(both) == both  # an explicit run folder stays the user's choice
    assert with_run_folder_of_output_dir(["-m", "paths.output_dir=runs/a"]) == ["-m", "paths.output_dir=runs/a"]
    inside = ["paths.output_dir=${hydra:runtime.output_dir}/ck"]  # a folder within the run folder, not it
    assert with_run_folder_of_output_dir(inside) == inside


@pytest.mark.slow
def test_a_run_given_only_paths_output_dir_keeps_its_settings_and_log_there(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *tiny_overrides(tmp_path), "trainer.max_steps=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "train.log").stat().st_size > 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "outputs").exists()  # nothing split off into a dated folder


@pytest.mark.parametrize("key", ["hydra.run.dir", "paths.output_dir"])
def test_a_run_folder_inside_a_file_is_one_line_before_any_work(tmp_path: Path, key: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"{key}={tmp_path / 'afile' / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    line = f"error: {key}={tmp_path / 'afile' / 'run'}: {tmp_path / 'afile'} is a file, not a folder\n"
    assert done.stderr == line
    assert not (tmp_path / "outputs").exists()


def test_the_default_run_folder_where_none_can_be_made_names_hydra_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "outputs").write_text("a file where the runs go")
    monkeypatch.chdir(tmp_path)
    problem = run_folder_problem(["style=wave"], planned_folder(["style=wave"], REPO / "configs"))
    assert problem.startswith("the run folder outputs/wave/") and problem.endswith(
        f"{tmp_path / 'outputs'} is a file, not a folder; choose another with hydra.run.dir=DIR"
    )


def test_a_sweeps_jobs_are_made_as_hydras_basic_sweeper_makes_them() -> None:
    jobs, varied = sweep_jobs(["seed=0,1", "style=starry", "trainer.max_steps=5,6"])
    assert varied == ["seed", "trainer.max_steps"]
    assert jobs == [
        ["seed=0", "style=starry", "trainer.max_steps=5"],
        ["seed=0", "style=starry", "trainer.max_steps=6"],
        ["seed=1", "style=starry", "trainer.max_steps=5"],
        ["seed=1", "style=starry", "trainer.max_steps=6"],
    ]


def test_a_bad_value_in_a_later_sweep_job_stops_the_sweep_before_any_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    tiny = [o for o in tiny_overrides(tmp_path) if not o.startswith(("paths.output_dir", "trainer.max_steps"))]
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "trainer.max_steps=1,0", *tiny, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: job 1 of the sweep (trainer.max_steps=0): trainer.max_steps must be a whole number >= 1, "
        "not 0; no job was started\n"
    )
    assert not sweep.exists()  # the first job did not train either
    assert not (tmp_path / "kept").exists()  # nor did checking it make the folder its model would go to


def test_a_sweep_of_good_jobs_and_runs_that_are_no_sweep_pass_the_check() -> None:
    def refuse(cfg, job) -> None:
        raise AssertionError(f"checked {job}")

    configs = REPO / "configs"
    assert first_bad_job(["seed=0,1"], configs, refuse) is None  # no --multirun: a single run of a list value
    assert first_bad_job(["-m", "seed=3"], configs, refuse) is None  # one job, checked as it starts
    checked = []
    assert first_bad_job(["-m", "seed=3,4"], configs, lambda cfg, job: checked.append(cfg.seed)) is None
    assert checked == [3, 4]


def test_a_refused_run_keeps_a_run_folder_the_user_made(tmp_path: Path) -> None:
    mine = tmp_path / "runs" / "exp1"
    mine.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"paths.output_dir={mine}", "trainer.max_steps=0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "trainer.max_steps must be a whole number" in done.stderr
    assert mine.is_dir() and not any(mine.iterdir())  # Hydra's files taken out, the folder kept


def test_a_sweep_folder_inside_a_file_is_one_line_with_swept_values(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    sweep = ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'afile' / 'sweep'}"]
    problem = run_folder_problem(sweep, planned_folder(sweep, REPO / "configs"))
    assert problem == f"hydra.sweep.dir={tmp_path / 'afile' / 'sweep'}: {tmp_path / 'afile'} is a file, not a folder"
