"""`stylenet benchmark`: runs end to end at tiny sizes and reports well-formed figures.

Nothing here compares speeds: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

from stylenet.benchmark import BenchmarkError
from stylenet.benchmark.backends import BACKENDS, CPU_ONLY, GPU_DEFAULT_ONLY, expand_backends
from stylenet.benchmark.peak import PeakShapes
from stylenet.benchmark.reference import ReferenceVGG16, reference_network, reference_train_step_factory
from stylenet.benchmark.report import format_markdown, format_report
from stylenet.benchmark.run import add_parser, parse_sizes, run
from stylenet.benchmark.styles import prepare_style_models, style_variants, stylizer_runner
from stylenet.benchmark.suite import run_benchmark
from stylenet.inference.model import load_model, load_network
from stylenet.networks.style_rows import norm_parameters


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


def _no_allocator_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if anything would switch on memory reuse in this (the pytest) process."""

    def refuse(enabled: bool = True) -> bool:
        raise AssertionError("keep_freed_memory called inside the pytest process")

    monkeypatch.setattr("stylenet.hardware.keep_freed_memory", refuse)


@pytest.mark.slow  # exports twice and compiles the fast training step where bf16 is native
def test_benchmark_writes_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_allocator_change(monkeypatch)  # in-process: the allocator of this process stays as it is
    monkeypatch.setattr("stylenet.benchmark.peak.CPU_SHAPES", PeakShapes(1, 8, 16, 32, 2))  # seconds less
    out, markdown = tmp_path / "bench.json", tmp_path / "docs" / "bench.md"
    argv = ["benchmark", "--sizes", "32", "--backends", "eager-fp32,onnxruntime,pt2", "--repeats", "2"]
    argv += ["--train-steps", "1", "--train-size", "32", "--train-batch", "1", "--in-process", "--json", str(out)]
    assert run(_parse([*argv, "--markdown", str(markdown)])) == 0
    result = json.loads(out.read_text())
    machine = result["machine"]
    assert machine["cpu_model"] and machine["os_cpu_count"] >= 1 and machine["torch_num_threads"] >= 1
    assert set(machine["cpu_flags"]) == {"avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni"}
    backends = {row["backend"] for row in result["inference"]}
    assert backends == {"reference-eager-fp32", "eager-fp32", "onnxruntime", "pt2"}
    _check_figures(result["inference"], "ms_per_frame")
    _check_figures(result["training"], "ms_per_step")
    assert {"reference-fp32", "project-fp32"} <= {row["backend"] for row in result["training"]}
    assert {row["memory_reuse"] for row in result["inference"] + result["training"]} == {"off"}
    assert "peak_rss_mb_note" in result
    printed = capsys.readouterr().out
    assert "reference-eager-fp32" in printed and machine["cpu_model"] in printed
    text = markdown.read_text()
    assert "| backend | memory reuse | 32x32 ms/frame | 32x32 vs ref |" in text
    assert "| reference-eager-fp32 | off |" in text and "| project-fp32 | off |" in text
    assert "`stylenet benchmark --sizes 32 --backends eager-fp32,onnxruntime,pt2 --repeats 2" in text
    # Every measured row as a share of this machine's peak in its precision, training steps too.
    peak = result["peak"]
    for row in result["inference"] + result["training"]:
        assert row["effective_gflops"] > 0
        assert row["percent_of_peak"] == pytest.approx(
            100 * row["effective_gflops"] / peak[f"conv3x3_{row['precision']}_gflops"]
        )
        # and of the same convolution timed between the row's own calls
        assert row["beside_peak_gflops"] > 0
        assert row["percent_of_beside_peak"] == pytest.approx(100 * row["effective_gflops"] / row["beside_peak_gflops"])
    steps = {row["backend"]: row for row in result["training"]}
    assert steps["project-fp32"]["precision"] == "fp32" and set(result["flops"]["training_step"]) == {
        "reference-fp32",
        "project",
    }
    if "project-bf16" in steps:
        assert steps["project-bf16"]["precision"] == steps["project-fast"]["precision"] == "bf16"
    assert "| images/s | vs ref | GFLOPS | % of peak | % of peak beside | peak RSS (MB) |" in text
    assert f"{steps['project-fp32']['percent_of_peak']:.1f}%" in text
    assert f"{steps['project-fp32']['percent_of_beside_peak']:.1f}%" in text


def test_memory_reuse_needs_a_process_per_measurement(capsys: pytest.CaptureFixture) -> None:
    argv = ["benchmark", "--sizes", "32", "--no-train", "--in-process", "--memory-reuse", "on"]
    assert run(_parse(argv)) == 2
    assert "--memory-reuse on or both needs a process per measurement" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_isolated_processes_compare_like_with_like(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each measurement in its own process: the path that makes peak RSS per measurement honest,
    # and the only place memory reuse is switched on. By default every row runs under both
    # settings, each ratio against the reference under the same one.
    _no_allocator_change(monkeypatch)
    tiny = PeakShapes(1, 8, 16, 32, 2)
    result = run_benchmark(
        [(24, 16)], ["eager-fp32"], repeats=1, train=False, train_steps=1, model=None, peak_shapes=tiny
    )
    assert result["peak"]["conv3x3_fp32_gflops"] > 0  # measured in a process of its own, as the rows are
    assert "memory reuse on" in result["peak_note"]  # the better of the two settings, for a peak
    rows = result["inference"]
    assert [(row["backend"], row["memory_reuse"]) for row in rows] == [
        ("reference-eager-fp32", "off"),
        ("eager-fp32", "off"),
        ("reference-eager-fp32", "on"),
        ("eager-fp32", "on"),
    ]
    _check_figures(rows, "ms_per_frame")
    for reference, row in (rows[0:2], rows[2:4]):
        assert row["ratio_vs_reference"] == pytest.approx(reference["ms_per_frame"] / row["ms_per_frame"])
    if sys.platform == "linux":  # glibc: the measuring process really switched it on, or left it off
        assert [row["memory_reuse_applied"] for row in rows] == [False, False, True, True]
    assert result["training"] == []


def test_reference_network_keeps_shape() -> None:
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert reference_network()(x).shape == x.shape


def test_reference_step_runs_vgg_on_output_and_content_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # The PyTorch example computes the style Grams once, before its loop: a step that ran VGG on
    # the style image too would make every training ratio look better than it is.
    seen: list[int] = []
    forward = ReferenceVGG16.forward

    def counting_forward(self: ReferenceVGG16, x: torch.Tensor) -> list[torch.Tensor]:
        seen.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(ReferenceVGG16, "forward", counting_forward)
    step = reference_train_step_factory(batch_size=2, size=32)
    assert seen == [2]  # the style Grams, once
    seen.clear()
    step()
    step()  # one full forward, backward and Adam step each
    assert seen == [2, 2, 2, 2]  # (output, content) per step, nothing else


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
    backends = ["eager-fp32", "fast-bf16", "cudagraph-fp16"]
    result = run_benchmark([(40, 32)], backends, 1, False, 1, None, isolate=False, peak=False)
    rows = {row["backend"]: row for row in result["inference"]}
    assert rows["fast-bf16"]["status"] == "ok"
    assert rows["fast-bf16"]["psnr_vs_eager_fp32_db"] > 30  # bf16 of the same weights, on a photo
    assert "psnr_vs_eager_fp32_db" not in rows["eager-fp32"]  # compared with itself it says nothing
    if not torch.cuda.is_available():
        assert rows["cudagraph-fp16"]["status"] == "skipped" and "CUDA" in rows["cudagraph-fp16"]["reason"]


def test_the_default_model_is_the_shipped_starry_and_random_weights_where_it_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stylenet.benchmark import suite
    from stylenet.errors import StylenetError
    from stylenet.inference import model

    network, metadata = suite._default_network()
    shipped, _ = model.load_network("starry")
    assert metadata["style"]["name"] == "starry"
    assert all(torch.equal(v, shipped.state_dict()[k]) for k, v in network.state_dict().items())

    def unreadable(path):
        raise StylenetError("a Git LFS pointer, not the model")

    monkeypatch.setattr(model, "load_network", unreadable)
    network, metadata = suite._default_network()
    assert metadata["style"]["name"] == "random" and network.num_styles == 1


def test_all_backends_leave_gpu_only_ones_to_gpus() -> None:
    assert expand_backends(["all"], cuda=True) == [b for b in BACKENDS if b not in CPU_ONLY]
    assert not set(expand_backends(["all"], cuda=False)) & set(GPU_DEFAULT_ONLY)
    assert set(CPU_ONLY) <= set(expand_backends(["all"], cuda=False))
    assert expand_backends(["cudagraph-fp16"], cuda=False) == ["cudagraph-fp16"]  # asked for by name: kept


def _tiny_model(folder: Path, num_styles: int = 1) -> Path:
    from stylenet.checkpoint import save_inference_checkpoint, style_metadata
    from stylenet.networks.transformer import TransformerNet

    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=num_styles).eval()
    with torch.no_grad():  # norms away from their identity start, so that styles and blends differ
        for parameter in norm_parameters(network):
            parameter.add_(0.3 * torch.randn(parameter.shape))
    styles = style_metadata([{"name": f"painting{i}"} for i in range(num_styles)])
    return save_inference_checkpoint(folder / f"tiny-{num_styles}.pt", network, {**styles, "steps": 1})


def test_style_rows_choose_and_blend_what_they_say(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path)
    network, metadata = load_network(model)
    specs = prepare_style_models(network, metadata, 3, tmp_path)
    single, one, blend = style_variants(3)
    assert list(specs) == [single, one, blend] == ["stylizer-1-style", "stylizer-3-styles", "stylizer-3-blend"]
    assert specs[one]["style"] == "style2" and specs[blend]["style"] == "style0=1,style1=1,style2=1"
    photo = torch.rand(1, 3, 24, 32)
    several = load_model(specs[one]["model_file"], precision="fp32")
    assert several.styles == ["style0", "style1", "style2"] and several.network.num_styles == 1  # baked in
    alone = load_model(specs[single]["model_file"], precision="fp32")(photo)
    assert torch.equal(several.with_style("style0")(photo), alone)  # the first row is the model's own
    assert (several.with_style("style2")(photo) - alone).abs().max() > 1e-3  # the others differ
    wide, _ = load_network(specs[one]["model_file"])
    with torch.no_grad():
        expected = wide(photo, torch.full((3,), 1 / 3)).clamp(0, 1)
    assert torch.allclose(several.with_style(specs[blend]["style"])(photo), expected, atol=1e-5)
    for variant in specs:  # what the measuring process runs: the stylizer in its choice, at the default precision
        run = stylizer_runner(specs[variant], torch.rand(1, 3, 24, 32), torch.device("cpu"))
        assert run().shape == (1, 3, 24, 32)


def test_a_model_of_several_styles_is_used_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _tiny_model(tmp_path, num_styles=2)
    network, metadata = load_network(model)
    specs = prepare_style_models(network, metadata, 2, tmp_path)
    assert specs["stylizer-2-styles"]["style"] == "painting1"
    photo = torch.rand(1, 3, 16, 16)
    first = load_model(model, precision="fp32")  # its first style, baked: what the single-style row runs
    assert torch.equal(load_model(specs["stylizer-1-style"]["model_file"], precision="fp32")(photo), first(photo))
    with pytest.raises(BenchmarkError, match="holds 2 styles; pass --styles 2"):
        prepare_style_models(network, metadata, 3, tmp_path)
    with pytest.raises(BenchmarkError, match="at least 2"):
        prepare_style_models(*load_network(_tiny_model(tmp_path)), 1, tmp_path)
    argv = ["benchmark", "--sizes", "16", "--backends", "eager-fp32", "--no-train", "--in-process"]
    assert run(_parse([*argv, "--model", str(model), "--styles", "3"])) == 2
    assert "pass --styles 2" in capsys.readouterr().err


def test_style_rows_report_ratios_against_the_single_style_model(tmp_path: Path, monkeypatch) -> None:
    _no_allocator_change(monkeypatch)
    model = _tiny_model(tmp_path, num_styles=3)
    result = run_benchmark([(32, 24)], ["eager-fp32"], 2, False, 1, str(model), isolate=False, styles=3, peak=False)
    rows = {row["backend"]: row for row in result["inference"]}
    assert list(rows) == ["reference-eager-fp32", "eager-fp32", *style_variants(3)]
    _check_figures(list(rows.values()), "ms_per_frame")
    single = rows["stylizer-1-style"]
    assert "ratio_vs_single_style" not in single and single["psnr_vs_eager_fp32_db"] > 30  # eager-fp32's weights
    assert rows["stylizer-3-styles"]["style"] == "painting2"
    for name in ("stylizer-3-styles", "stylizer-3-blend"):
        assert rows[name]["ratio_vs_single_style"] == pytest.approx(single["ms_per_frame"] / rows[name]["ms_per_frame"])
    assert result["settings"]["styles"] == 3 and "stylizer-1-style" in result["styles_note"]
    markdown = format_markdown(result, "stylenet benchmark --styles 3")
    table = "| size | memory reuse | 1 style ms/frame | 1 of 3 styles ms/frame | vs 1 style | blend of 3 ms/frame |"
    assert table in markdown and "| 32x24 | off |" in markdown
    printed = format_report(result)
    assert "1 of 3 styles ms/frame" in printed and "vs 1 style" in printed
    blend = rows["stylizer-3-blend"]["ratio_vs_single_style"]
    assert f"{blend:.3f}x" in printed and f"{blend:.3f}x" in markdown


def test_style_rows_run_in_one_process_with_their_calls_interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenet.benchmark import measure, styles

    calls = []

    def runner(choice, frame, device):
        return lambda: calls.append(choice["name"]) or frame

    monkeypatch.setattr(styles, "stylizer_runner", runner)
    choices = {name: {"name": name} for name in ("a", "b", "c")}
    spec = {"kind": "style-set", "choices": choices, "height": 16, "width": 16, "repeats": 3}
    result = measure.measure(spec)
    assert result["status"] == "ok" and set(result["rows"]) == {"a", "b", "c"}
    timed = calls[len(choices) * measure.WARMUP :]  # after each row's first call and warm-up
    assert timed == ["a", "b", "c"] * 3


def test_style_table_sets_each_choice_beside_the_single_style_model() -> None:
    from stylenet.benchmark.styles import with_single_style_ratio

    def row(size: str, backend: str, ms: float | None, reuse: str = "off") -> dict:
        figures = {"status": "ok", "ms_per_frame": ms, "frames_per_s": 1000 / ms, "peak_rss_mb": 100.0} if ms else {}
        return {"size": size, "backend": backend, "memory_reuse": reuse, **figures} | (
            {} if ms else {"status": "skipped", "reason": "compile failed"}
        )

    single, one, blend = style_variants(5)
    rows = [row("256x256", single, 40.0), row("256x256", one, 50.0), row("256x256", blend, None)]
    rows += [row("256x256", single, 20.0, "on"), row("256x256", one, 10.0, "on"), row("256x256", blend, 40.0, "on")]
    for i in (1, 2, 4, 5):
        with_single_style_ratio(rows[i], rows[3 * (i // 3)])
    assert "ratio_vs_single_style" not in rows[2] and rows[4]["ratio_vs_single_style"] == 2.0
    machine = {"cpu_model": "cpu", "os_cpu_count": 2, "torch_num_threads": 2, "cpu_flags": {}, "gpu": None}
    result = {
        "machine": machine | {"torch": "x", "onnxruntime": None},
        "settings": {"sizes": ["256x256"], "styles": 5},
        "inference": rows,
        "training": [],
        "ratio_note": "r",
        "peak_rss_mb_note": "p",
        "styles_note": "stylizer rows",
    }
    markdown = format_markdown(result)
    assert "| 256x256 | off | 40.0 | 50.0 | 0.800x | skipped | skipped |" in markdown
    assert "| 256x256 | on | 20.0 | 10.0 | 2.000x | 40.0 | 0.500x |" in markdown
    assert "- styles: stylizer rows" in markdown
    printed = format_report(result).splitlines()
    assert any(line.split() == ["256x256", "on", "20.0", "10.0", "2.000x", "40.0", "0.500x"] for line in printed)
    assert "blend of 5" not in format_markdown(result | {"settings": {"sizes": ["256x256"], "styles": None}})


def test_each_exported_backend_runs_a_file_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aoti-bf16 and aoti-int8 are both .aoti.pt2 packages: one file would leave both rows timing the last export."""
    from stylenet.benchmark import suite
    from stylenet.inference import export

    written: list[tuple[Path, str, str | None]] = []

    def record(network, metadata, path, fmt, precision=None):
        written.append((Path(path), fmt, precision))
        return path

    monkeypatch.setattr(export, "export", record)
    _, artifacts, failures, _ = suite._prepare(None, ["onnxruntime", "aoti-bf16", "aoti-int8"], tmp_path)
    assert failures == {} and len(set(artifacts.values())) == 3
    assert sorted((fmt, precision) for _, fmt, precision in written) == [
        ("aoti", "bf16"),
        ("aoti", "int8"),
        ("onnx", None),
    ]
    assert artifacts["aoti-int8"] == str(next(path for path, _, precision in written if precision == "int8"))
