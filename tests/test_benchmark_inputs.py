"""`stylenet benchmark`: a request that cannot work is one line and exit status 2 before anything is
measured; outputs are never replaced unasked, and written whole; a run that measured nothing exits 1.

Most tests stop at the checks: the `no_work` fixture fails any test in which the benchmark reaches its
first piece of work (exporting, measuring) before refusing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

from stylenet.benchmark.run import add_parser, run

# Options that keep a run that gets past the checks to a few seconds: one small size, one backend.
TINY = ["benchmark", "--sizes", "32", "--backends", "eager-fp32", "--repeats", "1", "--no-train", "--no-peak"]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stylenet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("work began before the request was checked")

    for name in ("_prepare", "measure", "measure_in_subprocess"):
        monkeypatch.setattr(f"stylenet.benchmark.suite.{name}", refuse)


def _canned_result(statuses: list[str]) -> dict:
    """A result as `run_benchmark` returns it, one inference row per status, for the tests of what is written."""
    rows = [
        {"size": "32x32", "backend": backend, "memory_reuse": "off", "status": status}
        | ({"ms_per_frame": 5.0, "frames_per_s": 200.0, "peak_rss_mb": 100.0} if status == "ok" else {"reason": "r"})
        for backend, status in zip(["reference-eager-fp32", "eager-fp32"], statuses, strict=True)
    ]
    machine = {"cpu_model": "cpu", "os_cpu_count": 2, "torch_num_threads": 2, "cpu_flags": {}, "gpu": None}
    return {
        "machine": machine | {"torch": "x", "onnxruntime": None},
        "settings": {"sizes": ["32x32"], "styles": None},
        "inference": rows,
        "training": [],
        "ratio_note": "r",
        "peak_rss_mb_note": "p",
    }


def test_an_existing_output_is_kept_unless_overwrite_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture, no_work: None
) -> None:
    earlier = tmp_path / "earlier.json"
    earlier.write_text("earlier figures")
    assert _run([*TINY, "--in-process", "--json", str(earlier)]) == 2
    assert capsys.readouterr().err == (
        f"error: --json {earlier} already exists; pass --overwrite to replace it, or choose another path\n"
    )
    assert earlier.read_text() == "earlier figures"
    with pytest.raises(AssertionError, match="work began"):  # --overwrite lets the run go on
        _run([*TINY, "--in-process", "--json", str(earlier), "--overwrite"])


@pytest.mark.parametrize("case", ["folder", "under a file", "same file twice", "unwritable folder"])
def test_an_output_that_cannot_be_written_is_refused_before_measuring(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture, no_work: None
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    same = tmp_path / "same.md"
    argv, message = {
        "folder": (["--json", str(tmp_path)], f"--json {tmp_path} is an existing folder, not a file"),
        "under a file": (["--json", str(a_file / "b.json")], f"{a_file} is a file, not a folder"),
        "same file twice": (["--json", str(same), "--markdown", str(same)], "--json and --markdown both name"),
        "unwritable folder": (["--markdown", "/proc/bench.md"], "--markdown /proc/bench.md: cannot write in /proc"),
    }[case]
    if case == "unwritable folder" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc, where no file can be made")
    assert _run([*TINY, "--in-process", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not same.exists()


def test_overwrite_replaces_the_files_whole_and_some_rows_measured_is_success(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A real run: cudagraph-fp16 is skipped on a CPU, the other rows are measured.
    out, markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    out.write_text("earlier figures")
    markdown.write_text("earlier tables")
    argv = [*TINY, "--backends", "eager-fp32,cudagraph-fp16", "--in-process", "--overwrite"]
    assert _run([*argv, "--json", str(out), "--markdown", str(markdown)]) == 0
    rows = json.loads(out.read_text())["inference"]
    assert {row["status"] for row in rows} == {"ok", "skipped"} or all(row["status"] == "ok" for row in rows)
    assert markdown.read_text().startswith("CPU: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md"]  # no partial file left
    assert capsys.readouterr().out.endswith(f"wrote {out}\nwrote {markdown}\n")


def test_a_failed_write_keeps_the_file_it_would_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stylenet.benchmark.run.run_benchmark", lambda *args, **kwargs: _canned_result(["ok", "ok"]))
    write_text = Path.write_text

    def full_disk(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self.parent == tmp_path:
            raise OSError(28, "No space left on device")
        return write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    out, markdown = tmp_path / "bench.json", tmp_path / "docs" / "bench.md"
    out.write_bytes(b"earlier figures")
    assert _run([*TINY, "--json", str(out), "--markdown", str(markdown), "--overwrite"]) == 1
    assert out.read_bytes() == b"earlier figures"
    assert markdown.is_file()  # the other file is still written
    printed = capsys.readouterr()
    assert f"error: --json {out}: cannot write (No space left on device)" in printed.err
    assert f"wrote {markdown}" in printed.out and f"wrote {out}" not in printed.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "docs"]


@pytest.mark.parametrize("backends", ["", ",", " , "])
def test_an_empty_backend_list_is_refused(backends: str, capsys: pytest.CaptureFixture, no_work: None) -> None:
    assert _run([*TINY, "--in-process", "--backends", backends]) == 2
    assert capsys.readouterr().err.startswith("error: --backends names no backend; choose from eager-fp32,")


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_a_measuring_timeout_of_no_time_is_refused(timeout: str, capsys: pytest.CaptureFixture, no_work: None) -> None:
    assert _run([*TINY, "--memory-reuse", "off", "--child-timeout", timeout]) == 2
    assert capsys.readouterr().err == f"error: --child-timeout {timeout}: must be a number of seconds above 0\n"


def test_a_size_beyond_the_memory_available_is_refused(capsys: pytest.CaptureFixture, no_work: None) -> None:
    assert _run([*TINY, "--in-process", "--sizes", "32,99999x99999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes 99999x99999: a frame needs at least ") and "memory" in err
    assert len(err.splitlines()) == 1


def test_the_memory_check_refuses_only_sizes_that_cannot_fit(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, no_work: None
) -> None:
    monkeypatch.setattr("stylenet.inference.memory.available_memory", lambda device="cpu": 100 << 20)
    monkeypatch.setattr("stylenet.benchmark.suite.device", lambda: torch.device("cpu"))
    # 1920x1080: 12 B a pixel of input and at least 196 of activations, about 411 MB.
    assert _run([*TINY, "--in-process", "--sizes", "256,1920x1080"]) == 2
    err = capsys.readouterr().err
    assert "--sizes 1920x1080: a frame needs at least 411.3 MB" in err and "over the 100.0 MB of memory" in err
    with pytest.raises(AssertionError, match="work began"):  # 512x512: about 52 MB
        _run([*TINY, "--in-process", "--sizes", "256,512"])


def test_a_training_size_the_loss_network_cannot_take_is_refused(capsys: pytest.CaptureFixture, no_work: None) -> None:
    argv = [*(option for option in TINY if option != "--no-train"), "--in-process", "--train-steps", "1"]
    argv += ["--train-batch", "1", "--train-size"]
    assert _run([*argv, "15"]) == 2
    assert capsys.readouterr().err == (
        "error: --train-size 15: the loss network halves a training image four times, so it needs at least 16 px\n"
    )
    with pytest.raises(AssertionError, match="work began"):  # 16 px is enough
        _run([*argv, "16"])
    with pytest.raises(AssertionError, match="work began"):  # training not measured: its size does not matter
        _run([*TINY, "--in-process", "--train-size", "8", "--train-steps", "0"])


@pytest.mark.skipif(sys.platform == "win32", reason="a measuring process is killed at its timeout")
def test_a_run_that_measured_nothing_exits_1_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # A real run whose every measuring process is stopped at its timeout, long before Python has started.
    out = tmp_path / "bench.json"
    assert _run([*TINY, "--memory-reuse", "off", "--child-timeout", "0.001", "--json", str(out)]) == 1
    printed = capsys.readouterr()
    assert "skipped: did not finish within 0.001 s" in printed.out
    assert printed.err.endswith("error: nothing measured: every row was skipped (reasons above); no file written\n")
    assert not out.exists()


def test_a_run_that_measured_some_rows_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stylenet.benchmark.run.run_benchmark", lambda *a, **k: _canned_result(["ok", "skipped"]))
    assert _run([*TINY, "--json", str(tmp_path / "bench.json")]) == 0
    assert json.loads((tmp_path / "bench.json").read_text())["inference"][1]["status"] == "skipped"


def test_on_a_gpu_the_activations_are_checked_against_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from stylenet.benchmark import BenchmarkError
    from stylenet.benchmark.checks import check_frames_fit

    monkeypatch.setattr("stylenet.inference.memory.available_memory", lambda device="cpu": 100 << 30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=1 << 30))
    check_frames_fit([(1920, 1080)], {}, "cuda")  # about 0.4 GB of activations on the GPU
    with pytest.raises(BenchmarkError, match="4096x4096: .* of GPU memory .* over the 1.0 GB the GPU holds"):
        check_frames_fit([(4096, 4096)], {}, "cuda")  # the frame alone, 192 MB, is on the host
