"""One measurement: time an inference backend, a training step or the machine's peak; record peak memory.

Also the entry point of the measuring process (`python -m stylenet.benchmark.measure`), the
only place where the benchmark changes the allocator: `keep_freed_memory` lasts as long as the
process, so it is switched on in a process that runs one measurement and then exits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stylenet.benchmark.backends import inference_runner
from stylenet.benchmark.isolate import reset_peak_rss, rss_mb
from stylenet.benchmark.machine import device as pick_device
from stylenet.benchmark.machine import sync
from stylenet.benchmark.peak import WARMUP as PEAK_WARMUP
from stylenet.benchmark.peak import PeakShapes, default_shapes, measure_peak, peak_conv, peak_precisions
from stylenet.benchmark.training import train_step

WARMUP = 2  # calls before timing: the first pays allocation, oneDNN kernel choice, compilation


def _timed_ms(run: Callable[[], Any], repeats: int, device: Any) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls of `run`, each waited for on the device."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _timed_beside_peak(
    run: Callable[[], Any], repeats: int, device: Any, spec: dict[str, Any]
) -> tuple[list[float], dict[str, float]]:
    """`_timed_ms`, with the peak's convolution in `spec["beside_peak"]`'s precision timed after each call.

    Where other tenants share the cores' matrix units their rate moves from minute to minute
    (docs/performance.md), so a peak measured once per run can be far from the rate the row met;
    the convolution timed between the row's own calls met the same minutes. Returns the times and
    {"beside_peak_gflops": median rate}, or no figure where the spec asks for none.
    """
    import torch

    if not spec.get("beside_peak"):
        return _timed_ms(run, repeats, device), {}
    shapes = PeakShapes(**spec["shapes"]) if spec.get("shapes") else default_shapes(device.type)
    conv, flops = peak_conv(device, shapes, spec["beside_peak"])
    with torch.inference_mode():
        _timed_ms(conv, PEAK_WARMUP, device)
    times, rates = [], []
    for _ in range(repeats):
        times += _timed_ms(run, 1, device)
        with torch.inference_mode():
            rates.append(flops / (_timed_ms(conv, 1, device)[0] / 1000) / 1e9)
    return times, {"beside_peak_gflops": statistics.median(rates)}


def _measure_inference(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    device = pick_device()
    baseline = rss_mb()
    run = inference_runner(spec, device)
    start = time.perf_counter()
    with torch.inference_mode():
        output = run()  # the first call alone: for compile it includes compilation, worth reporting
    sync(device)
    first_call_ms = (time.perf_counter() - start) * 1000
    if spec.get("output"):  # kept for the PSNR column; the reference's output is another network's
        torch.save(output.detach().float().clamp(0, 1).cpu(), spec["output"])
    with torch.inference_mode():
        for _ in range(WARMUP - 1):
            run()
        sync(device)
        times, beside = _timed_beside_peak(run, spec["repeats"], device, spec)
    median = statistics.median(times)
    return {
        "ms_per_frame": median,
        "min_ms": min(times),
        "frames_per_s": 1000 / median,
        "first_call_ms": first_call_ms,
        "baseline_rss_mb": baseline,
        **beside,
    }


def _measure_style_set(spec: dict[str, Any]) -> dict[str, Any]:
    """The style rows (`spec["choices"]`: row name -> model file and style) in one process, their calls
    interleaved (A, B, C, A, B, C...): whatever drifts while they run (other load, clocks, the allocator's
    state) falls on every row alike, and rows that run the same network time the same. Each row's median."""
    import torch

    from stylenet.benchmark.backends import benchmark_frame
    from stylenet.benchmark.styles import stylizer_runner

    device = pick_device()
    baseline = rss_mb()
    frame = benchmark_frame(spec["height"], spec["width"])
    runners = {name: stylizer_runner(choice, frame, device) for name, choice in spec["choices"].items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    with torch.inference_mode():
        for name, run in runners.items():
            output = run()
            if spec.get("outputs", {}).get(name):  # kept for the PSNR column
                torch.save(output.detach().float().clamp(0, 1).cpu(), spec["outputs"][name])
            for _ in range(WARMUP - 1):
                run()
        sync(device)
        for _ in range(spec["repeats"]):
            for name, run in runners.items():
                times[name] += _timed_ms(run, 1, device)
    rows = {
        name: {"ms_per_frame": statistics.median(t), "min_ms": min(t), "frames_per_s": 1000 / statistics.median(t)}
        for name, t in times.items()
    }
    return {"rows": rows, "baseline_rss_mb": baseline}


def _measure_peak(spec: dict[str, Any]) -> dict[str, Any]:
    from stylenet.hardware import cpu_has_native_bf16

    device = pick_device()
    shapes = PeakShapes(**spec["shapes"]) if spec.get("shapes") else default_shapes(device.type)
    return measure_peak(device, shapes, peak_precisions(device.type, cpu_has_native_bf16()))


def _measure_training(spec: dict[str, Any]) -> dict[str, Any]:
    device = pick_device()
    baseline = rss_mb()
    step = train_step(spec, device)
    start = time.perf_counter()
    step()  # warm-up; with compile, the compilation
    sync(device)
    first_step_ms = (time.perf_counter() - start) * 1000
    step()
    sync(device)
    times, beside = _timed_beside_peak(step, spec["steps"], device, spec)
    median = statistics.median(times)
    return {
        "ms_per_step": median,
        "images_per_s": spec["batch"] * 1000 / median,
        "first_step_ms": first_step_ms,
        "baseline_rss_mb": baseline,
        **beside,
    }


def measure(spec: dict[str, Any], reset_peak: bool = False) -> dict[str, Any]:
    """Run one measurement; failures become {"status": "skipped", "reason": ...} rather than errors.

    The allocator is left as it is: `main` sets it up for a measuring process.
    """
    import torch

    if reset_peak:
        reset_peak_rss()
    try:
        kinds = {
            "training": _measure_training,
            "peak": _measure_peak,
            "inference": _measure_inference,
            "style-set": _measure_style_set,
        }
        result = kinds[spec["kind"]](spec)
    except Exception as error:  # compile, fp16 and exporters fail in many ways; each is a reason to report
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return {"status": "skipped", "reason": f"{error.__class__.__name__}: {message}"[:500]}
    result = {"status": "ok", **result, "peak_rss_mb": rss_mb()}
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main(argv: list[str]) -> int:
    """The measuring process: `python -m stylenet.benchmark.measure --one SPEC --out FILE`."""
    from stylenet.hardware import keep_freed_memory

    parser = argparse.ArgumentParser(prog="stylenet.benchmark.measure")
    parser.add_argument("--one", required=True, help="a measurement spec as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.one)
    # Before the measurement allocates, for this process only; "off" leaves glibc's defaults untouched.
    reused = keep_freed_memory() if spec.get("memory_reuse") == "on" else False
    args.out.write_text(json.dumps({**measure(spec), "memory_reuse_applied": reused}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
