"""`stylenet benchmark`'s own peak, FLOP counts, and each row as a percentage of that peak.

Nothing here compares speeds: timings depend on the machine and its load; the tests check that
the figures are counted, measured and reported as defined.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from stylenet.benchmark.flops import frame_flops, training_step_flops
from stylenet.benchmark.measure import measure
from stylenet.benchmark.peak import PeakShapes, measure_peak, peak_precisions
from stylenet.benchmark.reference import reference_train_step_factory
from stylenet.benchmark.report import format_markdown, format_report
from stylenet.benchmark.run import add_parser, run
from stylenet.benchmark.suite import run_benchmark
from stylenet.benchmark.training import project_train_step_factory
from stylenet.hardware import cpu_has_native_bf16
from stylenet.networks.transformer import TransformerNet

TINY = PeakShapes(conv_batch=1, conv_channels=8, conv_size=16, matmul_size=32, repeats=2)


def _conv(cin: int, cout: int, k: int, h: int, w: int) -> int:
    return 2 * cin * cout * k * k * h * w


def test_frame_flops_match_a_count_by_hand() -> None:
    # width 0.25: channels 8-16-32; 14x18 rounds up to 7x9 and 4x5 in the encoder, and back.
    config = TransformerNet(width=0.25, num_residual_blocks=1).config.to_dict()
    by_hand = (
        _conv(3, 8, 9, 14, 18)
        + _conv(8, 16, 3, 7, 9)
        + _conv(16, 32, 3, 4, 5)
        + 2 * _conv(32, 32, 3, 4, 5)  # the residual block
        + _conv(32, 16, 3, 7, 9)  # upsampled to 7x9, then convolved
        + _conv(16, 8, 3, 14, 18)
        + _conv(8, 3, 9, 14, 18)
    )
    assert frame_flops(config, 14, 18) == by_hand
    with torch.no_grad():  # the meta count is the count of the real network on a real frame
        network = TransformerNet(**config).eval()
        with FlopCounterMode(display=False) as counter:
            network(torch.rand(1, 3, 14, 18))
    assert counter.get_total_flops() == by_hand


@pytest.mark.parametrize("variant", ["project-fp32", "reference-fp32"])
def test_training_step_flops_are_those_of_the_step_as_it_runs(variant: str) -> None:
    torch.manual_seed(0)
    if variant == "reference-fp32":
        step = reference_train_step_factory(1, 32)
    else:
        step = project_train_step_factory(1, 32)
    with FlopCounterMode(display=False) as counter:
        step()  # forward, loss, backward and Adam, on CPU
    counted = training_step_flops(variant, 1, 32)
    assert counted == counter.get_total_flops()
    counts = counter.get_flop_counts()["Global"]
    assert counts[torch.ops.aten.convolution_backward] > 0  # backward passes are in
    assert training_step_flops(variant, 2, 32) == 2 * counted
    # Every project step counts the plain fp32 step: the same arithmetic, however fast it runs.
    if variant == "project-fp32":
        assert training_step_flops("project-fast", 1, 32) == counted


def test_peak_reports_positive_gflops_per_precision() -> None:
    peak = measure_peak(torch.device("cpu"), TINY, ["fp32"])
    assert set(peak) == {"conv3x3_fp32_gflops", "matmul_fp32_gflops"}
    assert all(math.isfinite(v) and v > 0 for v in peak.values())
    row = measure({"kind": "peak", "shapes": TINY.to_dict()})  # as a measuring process runs it
    assert row["status"] == "ok" and row["peak_rss_mb"] > 0
    assert ("conv3x3_bf16_gflops" in row) == cpu_has_native_bf16()
    assert peak_precisions("cpu", native_bf16=False) == ["fp32"]
    assert peak_precisions("cpu", native_bf16=True) == ["fp32", "bf16"]
    assert peak_precisions("cuda", native_bf16=False) == ["fp32", "bf16", "fp16"]


def test_rows_report_effective_gflops_against_the_peak_of_their_precision() -> None:
    result = run_benchmark([(32, 24)], ["eager-fp32", "fast-bf16"], 1, False, 1, None, isolate=False, peak_shapes=TINY)
    peak = result["peak"]
    assert peak["conv3x3_fp32_gflops"] > 0 and peak["matmul_fp32_gflops"] > 0
    config = TransformerNet().config.to_dict()
    rows = {row["backend"]: row for row in result["inference"]}
    assert result["flops"]["frame"] == {
        "32x24 reference": frame_flops(None, 24, 32),
        "32x24": frame_flops(config, 24, 32),
    }
    for backend, row in rows.items():
        flops = frame_flops(None if backend.startswith("reference") else config, 24, 32)
        assert row["effective_gflops"] == pytest.approx(flops / row["ms_per_frame"] / 1e6)
        conv_peak = peak.get(f"conv3x3_{row['precision']}_gflops")
        assert row.get("percent_of_peak") == (
            pytest.approx(100 * row["effective_gflops"] / conv_peak) if conv_peak else None
        )
    assert rows["fast-bf16"]["precision"] == "bf16" and rows["eager-fp32"]["precision"] == "fp32"
    assert ("percent_of_peak" in rows["fast-bf16"]) == cpu_has_native_bf16()  # no bf16 peak where bf16 is emulated
    # the beside-peak only in precisions whose peak the run measures: never an emulated one
    assert ("beside_peak_gflops" in rows["fast-bf16"]) == cpu_has_native_bf16()
    assert rows["eager-fp32"]["percent_of_beside_peak"] == pytest.approx(
        100 * rows["eager-fp32"]["effective_gflops"] / rows["eager-fp32"]["beside_peak_gflops"]
    )
    printed = format_report(result)
    assert "GFLOPS" in printed and "% peak" in printed and "peak: conv3x3 fp32" in printed
    assert f"{rows['eager-fp32']['percent_of_peak']:.1f}%" in printed
    assert "3x3-convolution peak in the row's precision" in printed  # the definition, in a note
    markdown = format_markdown(result)
    header = "| 32x24 ms/frame | 32x24 vs ref | 32x24 % of peak | 32x24 % of peak beside | GFLOPS at 32x24 |"
    assert header in markdown
    assert "| peak (this machine, this run) | fp32 GFLOPS |" in markdown and "| 3x3 convolution |" in markdown
    assert "network as defined" in markdown
    json.dumps(result)


def test_no_peak_leaves_the_peak_columns_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="stylenet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    out, markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["benchmark", "--sizes", "24", "--backends", "eager-fp32", "--repeats", "1", "--no-train", "--in-process"]
    assert run(parser.parse_args([*argv, "--no-peak", "--json", str(out), "--markdown", str(markdown)])) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["peak"] is False
    assert not {"peak", "peak_note", "efficiency_note", "flops"} & set(result)
    assert all("effective_gflops" not in row and "percent_of_peak" not in row for row in result["inference"])
    printed, text = capsys.readouterr().out, markdown.read_text()
    assert "GFLOPS" not in printed and "% peak" not in printed
    assert "GFLOPS" not in text and "% of peak" not in text
    assert "| eager-fp32 | off | " in text
    assert "--no-peak" in text  # the command that made the tables
