"""The whole benchmark: which measurements run, in which process, and their ratios to the reference."""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from stylenet.benchmark import BenchmarkError
from stylenet.benchmark.backends import EXPORTED, REFERENCE, expand_backends
from stylenet.benchmark.checks import check_frames_fit, check_request
from stylenet.benchmark.efficiency import add_efficiency, inference_precision, training_precision
from stylenet.benchmark.isolate import CHILD_TIMEOUT_S, measure_in_subprocess
from stylenet.benchmark.machine import device, machine_info
from stylenet.benchmark.measure import WARMUP, measure
from stylenet.benchmark.peak import PeakShapes, default_shapes, format_peak, peak_note, peak_precisions
from stylenet.benchmark.styles import SINGLE, prepare_style_models, single_style, with_single_style_ratio
from stylenet.benchmark.training import REFERENCE as TRAIN_REFERENCE
from stylenet.benchmark.training import training_variants

Size = tuple[int, int]  # (width, height), as written on the command line: 1920x1080
# Memory reuse changes how fast large activations are allocated, and the `stylenet` commands use
# it for repeated work only, so both settings are ones users meet: by default each measurement
# runs under both (twice the time), every ratio comparing rows under the same setting, so that
# the allocator's share is a column apart rather than hidden in the ratios.
MEMORY_REUSE = ("both", "on", "off")


def _settings(memory_reuse: str | None, isolate: bool) -> list[str]:
    """The allocator settings to measure under ("on", "off"), validated."""
    if memory_reuse is None:
        memory_reuse = "both" if isolate else "off"
    if memory_reuse not in MEMORY_REUSE:
        raise BenchmarkError(f"--memory-reuse must be one of {', '.join(MEMORY_REUSE)}, not {memory_reuse!r}")
    if not isolate and memory_reuse != "off":
        raise BenchmarkError(
            "--memory-reuse on or both needs a process per measurement (it lasts as long as the process): "
            "drop --in-process, or pass --memory-reuse off"
        )
    return ["off", "on"] if memory_reuse == "both" else [memory_reuse]


def _psnr_db(output: str, reference: str | None) -> float | None:
    """PSNR (dB, signal range 1) of one backend's saved output against eager fp32's, where both exist."""
    import torch

    if not reference or not Path(output).is_file() or not Path(reference).is_file():
        return None
    a, b = torch.load(output, weights_only=True), torch.load(reference, weights_only=True)
    return 10 * math.log10(1 / max((a - b).pow(2).mean().item(), 1e-20))  # identical outputs read 200 dB


DEFAULT_MODEL = "starry"  # shipped: timing does not depend on the weights, the PSNR column does


def _default_network() -> tuple[Any, dict[str, Any]]:
    """The shipped starry model; random weights (seed 0) where the shipped file cannot be read.

    The PSNR of bf16 against fp32 depends on the weights, not only on the CPU: at 1080p random
    weights gave 36.7 dB where trained models gave 44-55 dB on the same CPU (`scripts/bf16_psnr.py`),
    so the default measures a model people run."""
    import torch

    from stylenet.errors import StylenetError
    from stylenet.inference.model import load_network
    from stylenet.networks.transformer import TransformerNet

    try:
        return load_network(DEFAULT_MODEL)
    except StylenetError:
        torch.manual_seed(0)
        return TransformerNet().eval(), {"style": {"name": "random"}, "steps": 0}


def _style_rows(
    style_models: dict[str, dict[str, Any]],
    base: dict[str, Any],
    measure_fn: Any,
    workdir: Path,
    size: str,
    fp32_output: str | None,
) -> list[dict[str, Any]]:
    """The single-style model and the choices of the multi-style one, measured together in one process with
    their calls interleaved (`measure._measure_style_set`); each choice with its ratio to the single style."""
    single_output = str(workdir / f"out-{SINGLE}-{size}-{base['memory_reuse']}.pt")
    spec = {**base, "kind": "style-set", "choices": style_models, "outputs": {SINGLE: single_output}}
    measured = measure_fn(spec)
    shared = {k: v for k, v in measured.items() if k != "rows"}  # status, reason or the process's peak memory
    rows = []
    for variant, choice in style_models.items():
        row = {"size": size, "backend": variant, **({"style": choice["style"]} if choice["style"] else {}), **shared}
        if measured.get("status") == "ok":
            row.update(measured["rows"][variant], interleaved=True)
        rows.append(row)
    single = rows[0]
    psnr = _psnr_db(single_output, fp32_output) if single.get("status") == "ok" else None
    if psnr is not None:  # the same weights as eager-fp32: how far its precision takes it
        single["psnr_vs_eager_fp32_db"] = psnr
    for row in rows[1:]:
        with_single_style_ratio(row, single)
    return rows


def _load(model: str | None) -> tuple[Any, dict[str, Any]]:
    """The network and metadata of `model`, or of the default model."""
    from stylenet.inference.model import load_network

    return load_network(model) if model else _default_network()


def _prepare(
    model: str | None,
    backends: list[str],
    workdir: Path,
    styles: int | None = None,
    loaded: tuple[Any, dict[str, Any]] | None = None,
) -> tuple[str, dict[str, str], dict[str, str], dict[str, dict[str, Any]]]:
    """Saves the network weights for the measuring processes; exports onnx/pt2/aoti once for every size; writes the
    models of the multi-style rows where `styles` asks for them. `loaded`: `model` as `_load` returned it."""
    import torch

    from stylenet.inference.export import SUFFIXES, export

    network, metadata = loaded or _load(model)
    style_models = prepare_style_models(network, metadata, styles, workdir) if styles is not None else {}
    network, metadata = single_style(network, metadata)  # the backends time one style (a choice runs as one)
    weights = workdir / "network.pt"
    torch.save({"config": network.config.to_dict(), "state_dict": network.state_dict()}, weights)
    artifacts, failures = {}, {}
    for backend, fmt in EXPORTED.items():
        if backend not in backends:
            continue
        try:
            precision = backend.rpartition("-")[2] if fmt == "aoti" else None
            # A file per backend: aoti-bf16 and aoti-int8 are both .aoti.pt2 packages.
            path = workdir / f"{backend}{SUFFIXES[fmt]}"
            artifacts[backend] = str(export(network, metadata, path, fmt, precision=precision))
        except Exception as error:  # a failed export skips that backend only
            message = (str(error).strip().splitlines() or [""])[0]
            failures[backend] = f"export failed: {error.__class__.__name__}: {message}"[:500]
    return str(weights), artifacts, failures, style_models


def _with_ratio(row: dict[str, Any], reference: dict[str, Any], key: str, faster_is_lower: bool) -> dict[str, Any]:
    """`row` with its ratio to `reference` (above 1 is faster), where both were measured."""
    if row.get(key) and reference.get(key):
        row["ratio_vs_reference"] = reference[key] / row[key] if faster_is_lower else row[key] / reference[key]
    return row


def _beside_peak(spec: dict[str, Any], precisions: list[str], shapes: PeakShapes | None) -> dict[str, Any]:
    """What asks a row's measurement to time the peak's convolution between its calls, in the row's
    precision (`stylenet.benchmark.measure`): nothing where the run measures no peak in that precision."""
    from stylenet.hardware import native_precision

    if spec["kind"] == "inference":
        precision = inference_precision(spec["variant"], native_precision(device().type))
    elif spec["kind"] == "training":
        precision = training_precision(spec["variant"])
    else:
        return {}
    if precision not in precisions:
        return {}
    return {"beside_peak": precision, "shapes": shapes.to_dict() if shapes else None}


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
    memory_reuse: str | None = None,
    styles: int | None = None,
    peak: bool = True,
    peak_shapes: PeakShapes | None = None,
) -> dict[str, Any]:
    """Measure inference per (backend, size) and training speed; returns the JSON-ready result.

    `sizes` are (width, height); inference is at batch 1. With `isolate` every measurement runs in
    a fresh process and `peak_rss_mb` is its own peak; without, it is the process-wide peak so far.
    `memory_reuse` ("on", "off" or "both"; default both, or off without `isolate`) is the
    allocator setting of the measuring processes; each row says which it ran under. `styles` (N >= 2)
    adds the rows of `stylenet.benchmark.styles`: the model as a single-style model against the same
    network holding N styles, in one style and in a blend. With `peak`, the machine's own peak
    (`stylenet.benchmark.peak`, at `peak_shapes` or the device's defaults) is measured first, and every
    row gets its effective GFLOPS and percentage of that peak (`stylenet.benchmark.efficiency`).
    """
    import torch

    from stylenet.hardware import cpu_has_native_bf16, native_precision

    backends = expand_backends(backends, cuda=torch.cuda.is_available())
    check_request(backends, repeats, train, train_steps, train_size, train_batch, child_timeout_s)
    settings = _settings(memory_reuse, isolate)
    loaded = _load(model)  # before any measurement: its widths set the memory a frame needs at the least
    check_frames_fit(sizes, loaded[0].config.to_dict(), device().type)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "sizes": [f"{w}x{h}" for w, h in sizes],
            "backends": backends,
            "repeats": repeats,
            "warmup": WARMUP,
            "batch": 1,
            "model": model or f"shipped {DEFAULT_MODEL} (random init, seed 0, where it cannot be read)",
            "train": train,
            "train_size": train_size,
            "train_batch": train_batch,
            "train_steps": train_steps,
            "isolated_processes": isolate,
            "memory_reuse": settings,
            "styles": styles,
            "peak": peak,
        },
        "ratio_note": "inference: reference_ms / backend_ms; training: images_per_s / reference images_per_s "
        "(above 1 is faster than the reference), each against the reference under the same memory reuse",
        "allocator_note": "on: the measuring process keeps freed memory for reuse (stylenet.hardware."
        "keep_freed_memory), as the stylenet commands do for repeated work; off: the C library's defaults",
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

        measured_precisions = peak_precisions(device().type, cpu_has_native_bf16()) if peak else []

        def measure_fn(spec: dict[str, Any]) -> dict[str, Any]:
            spec = {**spec, **_beside_peak(spec, measured_precisions, peak_shapes)}
            row = measure_in_subprocess(spec, workdir, child_timeout_s) if isolate else measure(spec, reset_peak=True)
            # One progress line per measurement: a long run shows where it is, and a run cut short
            # still leaves its figures in the log.
            inference = spec["kind"] in ("inference", "style-set")
            where = f"{spec['width']}x{spec['height']}" if inference else f"training {spec['size']} px"
            if spec["kind"] == "style-set":
                figures = {name: r["ms_per_frame"] for name, r in row.get("rows", {}).items()}
                done = ", ".join(f"{name} {ms:.1f} ms" for name, ms in figures.items()) or "skipped"
                print(f"  {where} style rows, reuse {spec['memory_reuse']}: {done}", file=sys.stderr, flush=True)
                return {"memory_reuse": spec["memory_reuse"], **row}
            figure = row.get("ms_per_frame", row.get("ms_per_step"))
            done = f"{figure:.1f} ms" if figure is not None else f"skipped ({row.get('reason', '')[:80]})"
            print(f"  {where} {spec['variant']}, reuse {spec['memory_reuse']}: {done}", file=sys.stderr, flush=True)
            return {"memory_reuse": spec["memory_reuse"], **row}

        weights, artifacts, failures, style_models = _prepare(model, backends, workdir, styles, loaded)
        if peak:
            # Under memory reuse where it is measured: the peak is the best this machine does.
            reuse = "on" if "on" in settings else settings[0]
            spec = {"kind": "peak", "memory_reuse": reuse, "shapes": peak_shapes.to_dict() if peak_shapes else None}
            row = measure_in_subprocess(spec, workdir, child_timeout_s) if isolate else measure(spec)
            result["peak"] = {k: v for k, v in row.items() if k.endswith("_gflops")}
            result["peak_note"] = peak_note(peak_shapes or default_shapes(device().type), reuse, row)
            print(f"  peak: {format_peak(result['peak']) or row.get('reason', '')}", file=sys.stderr, flush=True)
        for (width, height), reuse in ((size, reuse) for size in order for reuse in settings):
            base = {"kind": "inference", "width": width, "height": height, "repeats": repeats, "weights": weights}
            base["memory_reuse"] = reuse
            outputs = {b: str(workdir / f"out-{b}-{width}x{height}-{reuse}.pt") for b in backends}
            size = f"{width}x{height}"
            reference = {"size": size, "backend": REFERENCE, **measure_fn({**base, "variant": REFERENCE})}
            result["inference"].append(_with_ratio(reference, reference, "ms_per_frame", faster_is_lower=True))
            for variant in backends:
                row: dict[str, Any] = {"size": size, "backend": variant}
                if variant in failures:
                    row.update(memory_reuse=reuse, status="skipped", reason=failures[variant])
                else:
                    spec = {**base, "variant": variant, "artifact": artifacts.get(variant), "output": outputs[variant]}
                    row.update(measure_fn(spec))
                psnr = None if variant == "eager-fp32" else _psnr_db(outputs[variant], outputs.get("eager-fp32"))
                if psnr is not None:
                    row["psnr_vs_eager_fp32_db"] = psnr
                result["inference"].append(_with_ratio(row, reference, "ms_per_frame", faster_is_lower=True))
            if style_models:
                rows = _style_rows(style_models, base, measure_fn, workdir, size, outputs.get("eager-fp32"))
                result["inference"] += [_with_ratio(r, reference, "ms_per_frame", faster_is_lower=True) for r in rows]
        if style_models:
            precision = native_precision(device().type)
            result["styles_note"] = (
                f"stylizer-*: `load_model` as `stylenet stylize` runs it ({precision}, uncompiled, untiled): "
                f"{SINGLE} the model of one style; stylizer-{styles}-styles the same network holding {styles} styles, "
                f"one chosen; stylizer-{styles}-blend an equal blend of all; vs 1 style: {SINGLE} ms / the row's ms "
                "(above 1 is faster), same size and memory reuse; the three run in one process, their calls "
                "interleaved, so that drift falls on each alike (peak RSS: that process's)"
            )
        if train:
            variants = training_variants(cpu_has_native_bf16(), torch.cuda.is_available())
            for reuse in settings:
                base = {"kind": "training", "size": train_size, "batch": train_batch, "steps": train_steps}
                base["memory_reuse"] = reuse
                reference = {"backend": TRAIN_REFERENCE, **measure_fn({**base, "variant": TRAIN_REFERENCE})}
                for row in [reference, *({"backend": v, **measure_fn({**base, "variant": v})} for v in variants)]:
                    result["training"].append(_with_ratio(row, reference, "images_per_s", faster_is_lower=False))
            result["training_note"] = (
                f"{train_size} px, batch {train_batch}, median of {train_steps} steps after 2 warm-ups; project: "
                "TransformerNet + VGG19 PerceptualLoss as configs/ define it (configs/loss, configs/style), "
                "vgg_weights=random (speed does not depend on the weights); project-fast: bf16, channels-last and "
                "torch.compile, the default where bf16 is native; reference: the PyTorch example's step "
                "(VGG16, style Grams computed once before the loop)"
            )
            if not cpu_has_native_bf16():
                result["training_note"] += "; bf16 not measured: this CPU lacks native bf16"
        if peak:
            config = torch.load(weights, map_location="cpu", weights_only=True)["config"]
            add_efficiency(result, config, native_precision(device().type))
    return result
