"""`stylenet benchmark`: runs end to end at tiny sizes and reports well-formed figures.

Nothing here compares speeds: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from stylenet.benchmark.reference import reference_network, reference_train_step_factory
from stylenet.benchmark.run import BenchmarkError, add_parser, parse_sizes, run, run_benchmark


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stylenet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def _check_figures(rows: list[dict], time_key: str) -> None:
    assert rows
    for row in rows:
        assert row["status"] == "ok", row
        assert row[time_key] > 0
        assert row["ratio_vs_reference"] > 0
        assert row["peak_rss_mb"] > 0


@pytest.mark.slow
def test_benchmark_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    argv = ["benchmark", "--sizes", "32", "--backends", "eager-fp32,onnxruntime,pt2", "--repeats", "2"]
    argv += ["--train-steps", "1", "--train-size", "32", "--train-batch", "1", "--in-process", "--json", str(out)]
    assert run(_parse(argv)) == 0
    result = json.loads(out.read_text())
    machine = result["machine"]
    assert machine["cpu_model"] and machine["os_cpu_count"] >= 1 and machine["torch_num_threads"] >= 1
    assert set(machine["cpu_flags"]) == {"avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}
    backends = {row["backend"] for row in result["inference"]}
    assert backends == {"reference-eager-fp32", "eager-fp32", "onnxruntime", "pt2"}
    _check_figures(result["inference"], "ms_per_frame")
    _check_figures(result["training"], "ms_per_step")
    assert {"reference-fp32", "project-fp32"} <= {row["backend"] for row in result["training"]}
    assert "peak_rss_mb_note" in result
    printed = capsys.readouterr().out
    assert "reference-eager-fp32" in printed and machine["cpu_model"] in printed


def test_benchmark_isolated_processes() -> None:
    # Each measurement in its own process: the path that makes peak RSS per measurement honest.
    result = run_benchmark([(24, 16)], ["eager-fp32"], repeats=1, train=False, train_steps=1, model=None)
    assert [row["size"] for row in result["inference"]] == ["24x16", "24x16"]
    _check_figures(result["inference"], "ms_per_frame")
    assert result["training"] == []


def test_reference_network_keeps_shape() -> None:
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert reference_network()(x).shape == x.shape


def test_reference_train_step_runs() -> None:
    step = reference_train_step_factory(batch_size=1, size=32)
    step()  # no exception; one full forward, backward and Adam step


def test_unknown_backend_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(BenchmarkError, match="warp-drive.*eager-fp32"):
        run_benchmark([(32, 32)], ["warp-drive"], repeats=1, train=False, train_steps=1, model=None)
    assert run(_parse(["benchmark", "--sizes", "32", "--backends", "warp-drive", "--no-train"])) == 2
    assert "unknown backend" in capsys.readouterr().err


def test_parse_sizes() -> None:
    assert parse_sizes("256, 1920x1080") == [(256, 256), (1920, 1080)]
    with pytest.raises(BenchmarkError):
        parse_sizes("big")


def test_fast_backends_report_their_agreement_with_eager_fp32() -> None:
    result = run_benchmark([(40, 32)], ["eager-fp32", "fast-bf16", "cudagraph-fp16"], 1, False, 1, None, isolate=False)
    rows = {row["backend"]: row for row in result["inference"]}
    assert rows["fast-bf16"]["status"] == "ok"
    assert rows["fast-bf16"]["psnr_vs_eager_fp32_db"] > 30  # bf16 of the same weights, on a photo
    assert "psnr_vs_eager_fp32_db" not in rows["eager-fp32"]  # compared with itself it says nothing
    if not torch.cuda.is_available():
        assert rows["cudagraph-fp16"]["status"] == "skipped" and "CUDA" in rows["cudagraph-fp16"]["reason"]


def test_all_backends_leave_gpu_only_ones_to_gpus() -> None:
    from stylenet.benchmark.run import BACKENDS, GPU_DEFAULT_ONLY, expand_backends

    assert expand_backends(["all"], cuda=True) == list(BACKENDS)
    assert not set(expand_backends(["all"], cuda=False)) & set(GPU_DEFAULT_ONLY)
    assert expand_backends(["cudagraph-fp16"], cuda=False) == ["cudagraph-fp16"]  # asked for by name: kept
