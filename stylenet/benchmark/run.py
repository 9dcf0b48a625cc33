"""`stylenet benchmark`: inference speed per backend and size, training speed, peak memory.

Every figure is also given as a ratio against `stylenet.benchmark.reference` (the classic
PyTorch example's network and training step, eager fp32), measured in the same run, so that
numbers from different machines can be compared by their ratios. Each (backend, size) runs in a
fresh subprocess because ru_maxrss cannot be reset: a per-process peak is the only honest peak.
Nothing here asserts a timing; it only reports.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stylenet.errors import StylenetError

# eager-*: the module as trained; autocast-*: eager under torch.autocast; fast-*: stylenet's fast path
# (weights cast once, channels-last, `stylenet.inference.fast`); compile-*: the fast path through
# torch.compile; cudagraph-*: the fast path replayed as one CUDA graph (CUDA only).
BACKENDS = (
    "eager-fp32",
    "autocast-bf16",
    "autocast-fp16",
    "channels-last",
    "fast-bf16",
    "fast-fp16",
    "compile-fp32",
    "compile-bf16",
    "compile-fp16",
    "cudagraph-bf16",
    "cudagraph-fp16",
    "onnxruntime",
    "pt2",
)
CUDA_ONLY = ("cudagraph-bf16", "cudagraph-fp16")
# fp16 has no native CPU kernels here (measured 0.67x the reference): "all" leaves it to GPUs.
GPU_DEFAULT_ONLY = ("autocast-fp16", "fast-fp16", "compile-fp16", *CUDA_ONLY)
REFERENCE = "reference-eager-fp32"
DEFAULT_SIZES = "256,512,1024,1920x1080"
WARMUP = 2  # calls before timing: the first pays allocation, oneDNN kernel choice, compilation
CHILD_TIMEOUT_S = 1800
CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_int8")

# The default training recipe: configs/loss/perceptual.yaml with configs/style/starry.yaml.
CONTENT_LAYERS = ["relu4_2"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1.0, 10.0, 1.0
LEARNING_RATE = 1e-3

Size = tuple[int, int]  # (width, height), as written on the command line: 1920x1080


class BenchmarkError(StylenetError):
    """A benchmark request that cannot be run (unknown backend, malformed size)."""


# ---------------------------------------------------------------------------------------------
# Arguments and machine description


def parse_sizes(text: str) -> list[Size]:
    """ "256,1920x1080" -> [(256, 256), (1920, 1080)] (width, height)."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            width, height = (int(v) for v in item.split("x")) if "x" in item else (int(item), int(item))
        except ValueError:
            raise BenchmarkError(f"--sizes: {item!r} is not N or WxH (e.g. 256 or 1920x1080)") from None
        if min(width, height) < 8:
            raise BenchmarkError(f"--sizes: {item!r} is below the network's 8x8 minimum")
        sizes.append((width, height))
    return sizes


def expand_backends(names: list[str], cuda: bool = False) -> list[str]:
    """Validated backend names in canonical order; "all" means every backend that suits the device."""
    unknown = [n for n in names if n not in BACKENDS and n != "all"]
    if unknown:
        raise BenchmarkError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)} or all")
    if "all" in names:
        return [b for b in BACKENDS if cuda or b not in GPU_DEFAULT_ONLY]
    return [b for b in BACKENDS if b in names]


def machine_info() -> dict[str, Any]:
    """CPU model, core and thread counts, relevant CPU flags, GPU name; printed and saved with results."""
    import torch

    from stylenet.hardware import cpu_has_native_bf16

    model, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):  # not Linux: keep the fallbacks
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu_model": model,
        "os_cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "native_bf16": cpu_has_native_bf16(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------------------------------
# One measurement (runs in a child process, or in-process with isolate=False)


def _rss_mb() -> float:
    """Peak resident memory of this process, MB.

    VmHWM rather than ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would
    report its parent's peak; VmHWM belongs to the child's own address space.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def _reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS where Linux allows it (in-process mode only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _load_network(weights: str):
    import torch

    from stylenet.networks.transformer import TransformerNet

    saved = torch.load(weights, map_location="cpu", weights_only=True)
    network = TransformerNet(**saved["config"])
    network.load_state_dict(saved["state_dict"])
    return network.eval()


def benchmark_frame(height: int, width: int):
    """A real photo (scikit-image's astronaut, public domain) resized to (1, 3, height, width) in [0, 1].

    Timing does not depend on content, but the PSNR column compares outputs, which is only
    meaningful on a photograph; random noise is the fallback without scikit-image.
    """
    import torch
    import torch.nn.functional as F

    try:
        from skimage import data

        photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    except ImportError:
        return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    return F.interpolate(photo, size=(height, width), mode="bilinear", antialias=True).clamp(0, 1).contiguous()


def _inference_runner(spec: dict[str, Any], device) -> Callable[[], Any]:
    """A zero-argument callable running one batch-1 frame through the requested backend."""
    import torch

    from stylenet.inference.fast import DTYPES, FastRunner

    variant, height, width = spec["variant"], spec["height"], spec["width"]
    frame = benchmark_frame(height, width)
    kind, _, precision = variant.partition("-")
    if variant == "onnxruntime":
        import onnxruntime as ort

        providers = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + ["CPUExecutionProvider"]
        session = ort.InferenceSession(spec["artifact"], providers=providers)
        feed = {session.get_inputs()[0].name: frame.numpy()}
        return lambda: torch.from_numpy(session.run(None, feed)[0])
    if variant == REFERENCE:
        from stylenet.benchmark.reference import reference_network

        network, frame = reference_network().to(device), frame.to(device) * 255  # the reference works in 0..255
        return lambda: network(frame)
    if variant == "pt2":
        network = torch.export.load(spec["artifact"]).module().to(device)
        frame = frame.to(device)
        return lambda: network(frame)
    network = _load_network(spec["weights"]).to(device)
    frame = frame.to(device)
    if kind in ("fast", "compile"):
        return functools.partial(FastRunner(network, device, precision, compile=kind == "compile"), frame)
    if kind == "cudagraph":
        return _cuda_graph_runner(FastRunner(network, device, precision), frame, device)
    dtype = DTYPES[precision] if kind == "autocast" else None
    if variant == "channels-last":
        network = network.to(memory_format=torch.channels_last)
        frame = frame.contiguous(memory_format=torch.channels_last)

    def run() -> Any:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return network(frame)

    return run


def _cuda_graph_runner(runner: Any, frame: Any, device: Any) -> Callable[[], Any]:
    """Captures one call of `runner` on a static input; each call then replays the whole graph."""
    import torch

    if device.type != "cuda":
        raise BenchmarkError("CUDA graphs need a CUDA device")
    static = frame.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):  # warm-up on a side stream, as capture requires (cuDNN picks its kernels here)
            runner(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        output = runner(static)

    def replay() -> Any:
        graph.replay()
        return output

    return replay


def _timed_ms(run: Callable[[], Any], repeats: int, device: Any) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls of `run`, each waited for on the device."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _measure_inference(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    device = _device()
    baseline = _rss_mb()
    run = _inference_runner(spec, device)
    start = time.perf_counter()
    with torch.inference_mode():
        output = run()  # the first call alone: for compile it includes compilation, worth reporting
    _sync(device)
    if spec.get("output"):  # kept for the PSNR column; the reference's output is another network's
        torch.save(output.detach().float().clamp(0, 1).cpu(), spec["output"])
    first_call_ms = (time.perf_counter() - start) * 1000
    with torch.inference_mode():
        for _ in range(WARMUP - 1):
            run()
        _sync(device)
        times = _timed_ms(run, spec["repeats"], device)
    median = statistics.median(times)
    return {
        "ms_per_frame": median,
        "min_ms": min(times),
        "frames_per_s": 1000 / median,
        "first_call_ms": first_call_ms,
        "baseline_rss_mb": baseline,
    }


TRAIN_VARIANTS = {  # name: (precision, channels_last, compile)
    "project-fp32": ("fp32", False, False),
    "project-bf16": ("bf16", False, False),
    "project-fast": ("bf16", True, True),  # what trainer.precision=auto trains with where bf16 is native
    "project-compile-nchw": ("bf16", False, True),
}


def project_train_step_factory(
    batch_size: int = 4,
    size: int = 256,
    precision: str = "fp32",
    device: Any = "cpu",
    channels_last: bool = False,
    compile: bool = False,
) -> Callable[[], None]:
    """One training step of the project: TransformerNet + PerceptualLoss (VGG19, default recipe), Adam.

    The step is the one `StyleTransferModule` takes (the same module code, so the same speed
    options). The VGG19 weights are random: speed does not depend on them, and nothing downloads.
    """
    import torch

    from stylenet.losses.perceptual import build_perceptual_loss
    from stylenet.networks.transformer import TransformerNet
    from stylenet.training.module import StyleTransferModule

    device = torch.device(device)
    style = torch.rand(1, 3, size, size)
    loss = build_perceptual_loss(style, "random", CONTENT_LAYERS, STYLE_LAYERS, CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT)
    module = StyleTransferModule(
        TransformerNet(), loss, torch.optim.Adam, {"name": "random"}, channels_last=channels_last, compile=compile
    ).to(device)
    module.train()
    optimizer = torch.optim.Adam(module.network.parameters(), lr=LEARNING_RATE)
    content = torch.rand(batch_size, 3, size, size, device=device)
    if channels_last:
        content = content.contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        # As Lightning's bf16-mixed does: autocast around forward and loss, backward outside.
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            total = module.train_loss(content).total
        total.backward()
        optimizer.step()

    return step


def _measure_training(spec: dict[str, Any]) -> dict[str, Any]:
    from stylenet.benchmark.reference import reference_train_step_factory

    device = _device()
    baseline = _rss_mb()
    batch, size = spec["batch"], spec["size"]
    if spec["variant"] == "reference-fp32":
        step = reference_train_step_factory(batch, size, device)
    else:
        precision, channels_last, compile = TRAIN_VARIANTS[spec["variant"]]
        step = project_train_step_factory(batch, size, precision, device, channels_last, compile)
    start = time.perf_counter()
    step()  # warm-up; with compile, the compilation
    _sync(device)
    first_step_ms = (time.perf_counter() - start) * 1000
    step()
    _sync(device)
    median = statistics.median(_timed_ms(step, spec["steps"], device))
    return {
        "ms_per_step": median,
        "images_per_s": batch * 1000 / median,
        "first_step_ms": first_step_ms,
        "baseline_rss_mb": baseline,
    }


def measure(spec: dict[str, Any], reset_peak: bool = False) -> dict[str, Any]:
    """Run one measurement; failures become {"status": "skipped", "reason": ...} rather than errors."""
    import torch

    from stylenet.hardware import keep_freed_memory

    # As the `stylenet` commands run; the reference runs as the classic implementations do.
    keep_freed_memory(not spec["variant"].startswith("reference"))
    if reset_peak:
        _reset_peak_rss()
    try:
        result = _measure_training(spec) if spec["kind"] == "training" else _measure_inference(spec)
    except Exception as error:  # compile, fp16 and exporters fail in many ways; each is a reason to report
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return {"status": "skipped", "reason": f"{error.__class__.__name__}: {message}"[:500]}
    result = {"status": "ok", **result, "peak_rss_mb": _rss_mb()}
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _measure_in_subprocess(spec: dict[str, Any], workdir: Path, timeout_s: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """`measure(spec)` in a fresh interpreter, so that its ru_maxrss is this measurement's alone."""
    out = workdir / f"result-{time.monotonic_ns()}.json"
    root = str(Path(__file__).resolve().parents[2])  # makes `stylenet` importable from a source tree
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "stylenet.benchmark.run", "--one", json.dumps(spec), "--out", str(out)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"did not finish within {timeout_s:g} s"}
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "skipped", "reason": f"measuring process exited with code {done.returncode}: {last}"}
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------
# The whole benchmark


def _psnr_db(output: str, reference: str | None) -> float | None:
    """PSNR (dB, signal range 1) of one backend's saved output against eager fp32's, where both exist."""
    import torch

    if not reference or not Path(output).is_file() or not Path(reference).is_file():
        return None
    a, b = torch.load(output, weights_only=True), torch.load(reference, weights_only=True)
    return 10 * math.log10(1 / max((a - b).pow(2).mean().item(), 1e-20))  # identical outputs read 200 dB


def _prepare(model: str | None, backends: list[str], workdir: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """Saves the network weights for the measuring processes; exports onnx/pt2 once for every size."""
    import torch

    from stylenet.inference.export import export
    from stylenet.inference.model import load_network
    from stylenet.networks.transformer import TransformerNet

    if model:
        network, metadata = load_network(model)
    else:
        torch.manual_seed(0)
        network, metadata = TransformerNet().eval(), {"style": {"name": "random"}, "steps": 0}
    weights = workdir / "network.pt"
    torch.save({"config": network.config.to_dict(), "state_dict": network.state_dict()}, weights)
    artifacts, failures = {}, {}
    for backend, fmt in (("onnxruntime", "onnx"), ("pt2", "pt2")):
        if backend not in backends:
            continue
        try:
            artifacts[backend] = str(export(network, metadata, workdir / f"model.{fmt}", fmt))
        except Exception as error:  # a failed export skips that backend only
            message = (str(error).strip().splitlines() or [""])[0]
            failures[backend] = f"export failed: {error.__class__.__name__}: {message}"[:500]
    return str(weights), artifacts, failures


def run_benchmark(
    sizes: list[Size],
    backends: list[str],
    repeats: int,
    train: bool,
    train_steps: int,
    model: str | None,
    train_size: int = 256,
    train_batch: int = 4,
    isolate: bool = True,
    child_timeout_s: float = CHILD_TIMEOUT_S,
) -> dict[str, Any]:
    """Measure inference per (backend, size) and training speed; returns the JSON-ready result.

    `sizes` are (width, height); inference is at batch 1. With `isolate` every measurement runs in
    a fresh process and `peak_rss_mb` is its own peak; without, it is the process-wide peak so far.
    """
    import torch

    from stylenet.hardware import cpu_has_native_bf16

    backends = expand_backends(backends, cuda=torch.cuda.is_available())
    if repeats < 1 or train_steps < 1 or train_size < 8 or train_batch < 1:
        raise BenchmarkError("--repeats, --train-steps and --train-batch must be >= 1, --train-size >= 8")
    result: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "sizes": [f"{w}x{h}" for w, h in sizes],
            "backends": backends,
            "repeats": repeats,
            "warmup": WARMUP,
            "batch": 1,
            "model": model or "random init (seed 0)",
            "train": train,
            "train_size": train_size,
            "train_batch": train_batch,
            "train_steps": train_steps,
            "isolated_processes": isolate,
        },
        "ratio_note": "inference: reference_ms / backend_ms; training: images_per_s / reference images_per_s "
        "(above 1 is faster than the reference)",
        "allocator_note": "stylenet's backends reuse freed memory as the stylenet commands do "
        "(stylenet.hardware.keep_freed_memory); the reference runs with the C library's defaults",
        "peak_rss_mb_note": (
            "peak RSS (VmHWM) of a fresh process per measurement (includes Python, torch and runtime imports; "
            "baseline_rss_mb is the peak before the network was built)"
            if isolate
            else "peak RSS in this one process: VmHWM reset before each measurement where Linux allows it "
            "(else process-wide peak so far); memory kept by allocators inflates later figures; "
            "sizes run in increasing order"
        ),
        "inference": [],
        "training": [],
    }
    order = sorted(sizes, key=lambda s: s[0] * s[1]) if not isolate else sizes
    with tempfile.TemporaryDirectory(prefix="stylenet-benchmark-") as tmp:
        workdir = Path(tmp)

        def measure_fn(spec: dict[str, Any]) -> dict[str, Any]:
            row = _measure_in_subprocess(spec, workdir, child_timeout_s) if isolate else measure(spec, reset_peak=True)
            # One progress line per measurement: a long run shows where it is, and a run cut short
            # still leaves its figures in the log.
            inference = spec["kind"] == "inference"
            where = f"{spec['width']}x{spec['height']}" if inference else f"training {spec['size']} px"
            figure = row.get("ms_per_frame", row.get("ms_per_step"))
            done = f"{figure:.1f} ms" if figure is not None else f"skipped ({row.get('reason', '')[:80]})"
            print(f"  {where} {spec['variant']}: {done}", file=sys.stderr, flush=True)
            return row

        weights, artifacts, failures = _prepare(model, backends, workdir)
        for width, height in order:
            base = {"kind": "inference", "width": width, "height": height, "repeats": repeats, "weights": weights}
            outputs = {b: str(workdir / f"out-{b}-{width}x{height}.pt") for b in backends}
            reference = {
                "size": f"{width}x{height}",
                "backend": REFERENCE,
                **measure_fn({**base, "variant": REFERENCE}),
            }
            reference_ms = reference.get("ms_per_frame")
            if reference_ms:
                reference["ratio_vs_reference"] = 1.0
            result["inference"].append(reference)
            for variant in backends:
                row: dict[str, Any] = {"size": f"{width}x{height}", "backend": variant}
                if variant in failures:
                    row.update(status="skipped", reason=failures[variant])
                else:
                    spec = {**base, "variant": variant, "artifact": artifacts.get(variant), "output": outputs[variant]}
                    row.update(measure_fn(spec))
                if row.get("ms_per_frame") and reference_ms:
                    row["ratio_vs_reference"] = reference_ms / row["ms_per_frame"]
                psnr = None if variant == "eager-fp32" else _psnr_db(outputs[variant], outputs.get("eager-fp32"))
                if psnr is not None:
                    row["psnr_vs_eager_fp32_db"] = psnr
                result["inference"].append(row)
        if train:
            base = {"kind": "training", "size": train_size, "batch": train_batch, "steps": train_steps}
            reference = {"backend": "reference-fp32", **measure_fn({**base, "variant": "reference-fp32"})}
            reference_rate = reference.get("images_per_s")
            if reference_rate:
                reference["ratio_vs_reference"] = 1.0
            result["training"].append(reference)
            native_bf16 = cpu_has_native_bf16() or torch.cuda.is_available()
            variants = ["project-fp32"] + (["project-bf16", "project-fast"] if native_bf16 else [])
            if torch.cuda.is_available():  # on GPUs the layout that wins is not settled: measure both
                variants.append("project-compile-nchw")
            for variant in variants:
                row = {"backend": variant, **measure_fn({**base, "variant": variant})}
                if row.get("images_per_s") and reference_rate:
                    row["ratio_vs_reference"] = row["images_per_s"] / reference_rate
                result["training"].append(row)
            result["training_note"] = (
                f"{train_size} px, batch {train_batch}, median of {train_steps} steps after 2 warm-ups; project: "
                "TransformerNet + VGG19 PerceptualLoss (content relu4_2, style relu1_1..relu5_1, weights 1/10/1), "
                "vgg_weights=random (speed does not depend on the weights); project-fast: bf16, channels-last and "
                "torch.compile, the default where bf16 is native; reference: the PyTorch example's step"
            )
            if not cpu_has_native_bf16():
                result["training_note"] += "; bf16 not measured: this CPU lacks native bf16"
    return result


# ---------------------------------------------------------------------------------------------
# Output


def _table_row(label: str, row: dict[str, Any], time_key: str, rate_key: str, psnr_column: bool = True) -> str:
    """One line of the printed table: time, rate, ratio and memory, or why the row was skipped."""
    if row.get("status") != "ok":
        return f"{label}  skipped: {row.get('reason', '')[:90]}"
    ratio, psnr = row.get("ratio_vs_reference"), row.get("psnr_vs_eager_fp32_db")
    gpu = f"{row['peak_gpu_mb']:>13.0f}" if "peak_gpu_mb" in row else ""
    return (
        f"{label}{row[time_key]:>10.1f}{row[rate_key]:>10.2f}"
        f"{(f'{ratio:.2f}x' if ratio else '-'):>8}{row['peak_rss_mb']:>13.0f}"
        f"{(f'{psnr:.1f}' if psnr is not None else '-') if psnr_column else '':>9}{gpu}"
    )


def format_report(result: dict[str, Any]) -> str:
    """A readable text table of `result`."""
    m = result["machine"]
    flags = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["cpu_flags"].items())
    lines = [
        f"CPU: {m['cpu_model']}; {m['os_cpu_count']} cores, torch threads {m['torch_num_threads']}; {flags}",
        f"GPU: {m['gpu'] or 'none'}; torch {m['torch']}, onnxruntime {m['onnxruntime'] or 'not installed'}",
        "",
        f"{'size':<11}{'backend':<22}{'ms/frame':>10}{'frames/s':>10}{'vs ref':>8}{'peak RSS MB':>13}"
        f"{'PSNR dB':>9}{'peak GPU MB' if m['gpu'] else '':>13}",
    ]
    for row in result["inference"]:
        lines.append(_table_row(f"{row['size']:<11}{row['backend']:<22}", row, "ms_per_frame", "frames_per_s"))
    if result["training"]:
        s = result["settings"]
        lines += [
            "",
            f"training, {s['train_size']} px, batch {s['train_batch']}:",
            f"{'step':<22}{'ms/step':>10}{'images/s':>10}{'vs ref':>8}{'peak RSS MB':>13}{'':>9}"
            f"{'peak GPU MB' if m['gpu'] else '':>13}",
        ]
        for row in result["training"]:
            lines.append(_table_row(f"{row['backend']:<22}", row, "ms_per_step", "images_per_s", psnr_column=False))
    lines += [
        "",
        f"vs ref: {result['ratio_note']}",
        *([f"memory reuse: {result['allocator_note']}"] if "allocator_note" in result else []),
        "PSNR: of the output against eager-fp32's, same weights and photo (scikit-image's astronaut, resized)",
        f"peak RSS: {result['peak_rss_mb_note']}",
    ]
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the `benchmark` subcommand to the `stylenet` command's subparsers."""
    parser = subparsers.add_parser(
        "benchmark", help="time inference per backend and size, and training, against the reference network"
    )
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"N or WxH, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--backends", default="all", help=f"comma-separated: {', '.join(BACKENDS)} or all (default all)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (median reported)")
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip the training measurements")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps (after one warm-up)")
    parser.add_argument("--train-size", type=int, default=256, help="training image size in pixels (default 256)")
    parser.add_argument("--train-batch", type=int, default=4, help="training batch size (default 4)")
    parser.add_argument("--model", type=Path, default=None, help="a .pt or .ckpt model (default: random weights)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the full result as JSON")
    parser.add_argument(
        "--in-process", dest="isolate", action="store_false", help="faster, but peak RSS is process-wide"
    )
    parser.add_argument(
        "--child-timeout", type=float, default=CHILD_TIMEOUT_S, help="seconds before one measurement is skipped"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs `stylenet benchmark` with parsed `args`; prints the table, optionally writes JSON."""
    try:
        result = run_benchmark(
            parse_sizes(args.sizes),
            [b.strip() for b in args.backends.split(",") if b.strip()],
            args.repeats,
            args.train,
            args.train_steps,
            str(args.model) if args.model else None,
            train_size=args.train_size,
            train_batch=args.train_batch,
            isolate=args.isolate,
            child_timeout_s=args.child_timeout,
        )
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


def _child_main(argv: list[str]) -> int:
    """Hidden entry for the measuring subprocess: `python -m stylenet.benchmark.run --one SPEC --out FILE`."""
    parser = argparse.ArgumentParser(prog="stylenet.benchmark.run")
    parser.add_argument("--one", required=True, help="a measurement spec as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(measure(json.loads(args.one))))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
