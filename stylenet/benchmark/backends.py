"""The inference paths the benchmark times: each becomes a zero-argument callable on one frame."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from stylenet.benchmark import BenchmarkError

# eager-*: the module as trained; autocast-*: eager under torch.autocast; fast-*: stylenet's fast path
# (weights cast once, channels-last, `stylenet.inference.fast`); compile-*: the fast path through
# torch.compile (compile-int8: with int8 convolutions, `stylenet.networks.int8_convs`, CPU only);
# cudagraph-*: the fast path replayed as one CUDA graph (CUDA only); aoti-*: the fast path compiled
# ahead of time into a package (`stylenet.inference.aot_package`, CPU only; aoti-int8 as compile-int8).
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
    "compile-int8",
    "cudagraph-bf16",
    "cudagraph-fp16",
    "onnxruntime",
    "pt2",
    "aoti-bf16",
    "aoti-int8",
)
CUDA_ONLY = ("cudagraph-bf16", "cudagraph-fp16")
# fp16 has no native CPU kernels here (measured 0.67x the reference): "all" leaves it to GPUs.
GPU_DEFAULT_ONLY = ("autocast-fp16", "fast-fp16", "compile-fp16", *CUDA_ONLY)
REFERENCE = "reference-eager-fp32"
CPU_ONLY = ("compile-int8", "aoti-bf16", "aoti-int8")
# backend: the export format it runs
EXPORTED = {"onnxruntime": "onnx", "pt2": "pt2", "aoti-bf16": "aoti", "aoti-int8": "aoti"}
STYLIZER_PREFIX = "stylizer-"  # the multi-style rows (stylenet.benchmark.styles), asked for with --styles N


def expand_backends(names: list[str], cuda: bool = False) -> list[str]:
    """Validated backend names in canonical order; "all" means every backend that suits the device."""
    unknown = [n for n in names if n not in BACKENDS and n != "all"]
    if unknown:
        raise BenchmarkError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)} or all")
    if "all" in names:
        return [b for b in BACKENDS if (b not in CPU_ONLY if cuda else b not in GPU_DEFAULT_ONLY)]
    return [b for b in BACKENDS if b in names]


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


def _load_network(weights: str):
    import torch

    from stylenet.networks.transformer import TransformerNet

    saved = torch.load(weights, map_location="cpu", weights_only=True)
    network = TransformerNet(**saved["config"])
    network.load_state_dict(saved["state_dict"])
    return network.eval()


def inference_runner(spec: dict[str, Any], device) -> Callable[[], Any]:
    """A zero-argument callable running one batch-1 frame through the backend `spec["variant"]`."""
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
    if variant.startswith("aoti-"):
        if device.type != "cpu":
            raise BenchmarkError(f"{variant} packages are compiled for CPUs")
        from pathlib import Path

        from stylenet.inference.aot_package import load_aoti

        run, _ = load_aoti(Path(spec["artifact"]), device, "auto")  # as load_model runs it, padding included
        return lambda: run(frame)
    network = _load_network(spec["weights"]).to(device)
    frame = frame.to(device)
    if kind in ("fast", "compile"):
        # The compiled rows time the compiled graph at every size, as `load_model(compile=True)` runs it
        # where freed memory is kept (FastRunner.compiles).
        runner = FastRunner(network, device, precision, compile=kind == "compile", eager_for_fresh_pages=False)
        return functools.partial(runner, frame)
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
