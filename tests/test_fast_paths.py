"""Quality gate of the fast inference paths: each agrees with eager fp32 of the same weights.

Floors (PSNR against the eager fp32 output, on real photos, odd sizes included): 35 dB for
bf16/fp16, 50 dB for fp32 paths. The network is a real one: tests/data/quickstart_starry.pt is
the model `python train.py experiment=quickstart` trained. Trained weights matter here: bf16
error grows with the spread of the weights, and randomly initialised networks (about 34-36 dB
in bf16) say little about what users run. The photos are scikit-image's (CC0, in its wheel), so
the gate runs on a fresh clone.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from skimage import data
from torch import nn
from torch._dynamo.utils import counters

from stylenet import load_model
from stylenet.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from stylenet.inference import fast
from stylenet.inference.fast import FastRunner
from stylenet.networks import int8_convs

PHOTOS = (data.astronaut, data.chelsea)  # (H, W, 3) uint8
SIZES = [(64, 64), (127, 161), (256, 256)]  # (H, W)
# Compiled paths: two sizes, an even and an odd one. Each new size class compiles anew (the odd
# sizes' edge handling, and the instance norm's partial sums, are specialised), about 45 s a time.
COMPILED_SIZES = SIZES[:2]
FAST_PATHS = [
    ("bf16", False, 35.0),
    ("fp16", False, 35.0),
    pytest.param("bf16", True, 35.0, marks=pytest.mark.slow),
    pytest.param("fp32", True, 50.0, marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def network() -> nn.Module:
    net, _ = load_inference_checkpoint(REPO / "tests" / "data" / "quickstart_starry.pt")
    return net.eval()


def photos(height: int, width: int) -> torch.Tensor:
    """The photos as one (N, 3, height, width) batch in [0, 1]."""
    resized = [
        F.interpolate(
            torch.from_numpy(photo()).permute(2, 0, 1).unsqueeze(0).float() / 255,
            size=(height, width),
            mode="bilinear",
            antialias=True,
        )
        for photo in PHOTOS
    ]
    return torch.cat(resized).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return 10 * math.log10(1 / max(mse, 1e-12))


@pytest.mark.parametrize(("precision", "compile", "floor"), FAST_PATHS)
def test_fast_path_agrees_with_eager_fp32(network: nn.Module, precision: str, compile: bool, floor: float) -> None:
    runner = FastRunner(network, torch.device("cpu"), precision, compile=compile)
    graphs = counters["stats"]["unique_graphs"]
    for height, width in COMPILED_SIZES if compile else SIZES:
        images = photos(height, width)
        with torch.inference_mode():
            reference = network(images)
            fast = runner(images)
        assert fast.shape == reference.shape
        assert runner.compiled == compile  # a silent fallback to eager would make this test vacuous
        assert psnr(fast, reference) >= floor, (precision, compile, height, width, psnr(fast, reference))
    if compile:  # and Dynamo did compile a graph for it, not merely wrap the module
        assert counters["stats"]["unique_graphs"] > graphs
    # The output is not trivially flat: the gate compares real images, not two constants.
    assert reference.std() > 0.05


def test_a_process_may_compile_more_networks_than_dynamos_default_limit(network: nn.Module) -> None:
    # Each runner's graph counts against one limit for TransformerNet.forward (8 by default).
    with torch._dynamo.config.patch(**{fast.recompile_limit_name(): 8}):  # restored after the test
        FastRunner(network, torch.device("cpu"), "bf16", compile=True)
        assert getattr(torch._dynamo.config, fast.recompile_limit_name()) == fast.RECOMPILE_LIMIT >= 32


def test_the_plain_api_does_not_import_dynamo() -> None:
    # torch._dynamo costs about 150 MB of resident memory and most of a second: only compiling pays it.
    model = REPO / "tests" / "data" / "quickstart_starry.pt"
    code = (
        "import sys, torch, stylenet\n"
        f"stylenet.load_model({str(model)!r})(torch.rand(1, 3, 64, 64))\n"
        "print('torch._dynamo' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split()[-1] == "False"


NO_COMPILER = "InvalidCxxCompiler: No working C++ compiler found"


def test_a_failed_compilation_warns_in_one_line_and_runs_eager(
    network: nn.Module, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(module: nn.Module, device: torch.device):
        def run(images: torch.Tensor) -> torch.Tensor:
            raise RuntimeError(f"{NO_COMPILER}\n(a long explanation)")

        return run

    monkeypatch.setattr(fast, "_compile", broken)
    runner = FastRunner(network, torch.device("cpu"), "bf16", compile=True)
    assert runner.compiled
    images = photos(32, 40)
    with torch.inference_mode():
        out = runner(images)
        eager = runner.uncompiled()(images)
    assert not runner.compiled
    torch.testing.assert_close(out, eager, rtol=0, atol=0)
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"warning: torch.compile failed, running uncompiled ({NO_COMPILER})"


def test_a_graph_break_is_a_failed_compilation(capsys: pytest.CaptureFixture[str]) -> None:
    """Compiled in pieces around a graph break, a runner would claim a speed it does not have."""

    class Breaks(nn.Module):
        def use_fast_ops(self) -> nn.Module:
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch._dynamo.graph_break()
            return x * 2

    runner = FastRunner(Breaks(), torch.device("cpu"), "fp32", compile=True)
    with torch.inference_mode():
        out = runner(torch.ones(1, 3, 8, 8))
    torch.testing.assert_close(out, torch.full((1, 3, 8, 8), 2.0))
    assert not runner.compiled
    assert capsys.readouterr().err.startswith("warning: torch.compile failed")


def test_a_stylizer_stops_calling_itself_compiled_after_a_failed_compilation(
    tmp_path: Path, network: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--benchmark` and the CLI's notes print `stylizer.backend`: it must say what really runs."""

    def broken(module: nn.Module, device: torch.device):
        def run(images: torch.Tensor) -> torch.Tensor:
            raise RuntimeError(NO_COMPILER)

        return run

    monkeypatch.setattr(fast, "_compile", broken)
    path = save_inference_checkpoint(tmp_path / "m.pt", network, {"style": {"name": "t"}, "steps": 1})
    stylizer = load_model(path, precision="bf16", compile=True)
    assert stylizer.backend == "compiled"
    with torch.inference_mode():
        stylizer(photos(32, 40))
    assert stylizer.backend == "eager-fast"


@pytest.mark.parametrize("split", [True, False], ids=["large: one image at a time", "small: one call"])
def test_an_eager_cpu_batch_of_large_images_runs_one_image_at_a_time(monkeypatch, network, split) -> None:
    monkeypatch.setattr(fast, "SPLIT_PIXELS", 127 * 161 if split else 127 * 161 + 1)
    runner = FastRunner(network, torch.device("cpu"), "bf16")
    calls = []
    forward = runner.module.forward
    monkeypatch.setattr(runner.module, "forward", lambda x: calls.append(len(x)) or forward(x))
    images = photos(127, 161)
    with torch.inference_mode():
        batch = runner(images)
        alone = torch.cat([runner(image) for image in images.split(1)])
        reference = network(images)
    assert calls == ([1, 1] if split else [2]) + [1, 1]
    assert batch.shape == images.shape
    if split:
        torch.testing.assert_close(batch, alone, rtol=0, atol=0)
    assert psnr(batch, reference) > 35


@pytest.fixture
def compiled_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes that reached the compiled network (a stand-in that records them and runs the module)."""
    calls: list[tuple[int, ...]] = []

    def recording(module: nn.Module, device: torch.device):
        return lambda images: calls.append(tuple(images.shape)) or module(images)

    monkeypatch.setattr(fast, "_compile", recording)
    # The mmap ceiling scaled down: a 32x40 image's full-size bf16 activation (32 channels) reaches it.
    monkeypatch.setattr(fast, "KEEP_BYTES", 32 * 2 * 32 * 40)
    monkeypatch.setattr(fast.hardware, "keeping_freed_memory", lambda: False)
    monkeypatch.setattr(fast.hardware, "uses_glibc", lambda: True)
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    return calls


def test_images_whose_compiled_frame_would_map_fresh_pages_run_eager(network, compiled_calls) -> None:
    """Without memory reuse, each large activation of a compiled frame is a new mapping (page faults
    every frame), where the eager path keeps its largest ones: the eager path runs those images."""
    runner = FastRunner(network, torch.device("cpu"), "bf16", compile=True)
    small, large = photos(32, 39), photos(32, 40)
    with torch.inference_mode():
        out_small, out_large = runner(small), runner(large)
        eager_large = runner.uncompiled()(large)
    assert compiled_calls == [tuple(small.shape)]
    assert runner.compiles(tuple(small.shape)) and not runner.compiles(tuple(large.shape))
    assert runner.compiled  # still compiled for the sizes it pays at
    torch.testing.assert_close(out_large, eager_large, rtol=0, atol=0)
    assert out_small.shape == small.shape


@pytest.mark.parametrize("why", ["memory reuse", "huge pages", "asked for", "another C library"])
def test_the_compiled_network_runs_large_images_where_fresh_pages_are_not_paid_or_asked_for(
    network, compiled_calls, monkeypatch, why
) -> None:
    if why == "memory reuse":
        monkeypatch.setattr(fast.hardware, "keeping_freed_memory", lambda: True)
    elif why == "huge pages":
        monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    elif why == "another C library":
        monkeypatch.setattr(fast.hardware, "uses_glibc", lambda: False)
    runner = FastRunner(network, torch.device("cpu"), "bf16", compile=True, eager_for_fresh_pages=why != "asked for")
    large = photos(32, 40)
    with torch.inference_mode():
        runner(large)
    assert compiled_calls == [tuple(large.shape)]


@pytest.mark.skipif(int8_convs.available() is not None, reason=f"int8: {int8_convs.available()}")
def test_an_int8_runner_runs_its_graph_for_images_that_would_map_fresh_pages(network, compiled_calls) -> None:
    """Its eager path would run bf16, whose convolutions cost more than the int8 graph's page faults."""
    runner = FastRunner(network, torch.device("cpu"), "int8", compile=True)
    large = photos(32, 40)
    with torch.inference_mode():
        runner(large)
    assert compiled_calls == [tuple(large.shape)]
    assert runner.compiles(tuple(large.shape))


def test_a_compiled_stylizer_plans_memory_for_the_path_each_size_runs(tmp_path, network, compiled_calls) -> None:
    """The compiled path peaks higher than the eager one (`memory.activation_bytes_per_pixel`):
    tiles and batches are planned for the path that will run."""
    path = save_inference_checkpoint(tmp_path / "m.pt", network, {"style": {"name": "t"}, "steps": 1})
    compiled, eager = load_model(path, precision="bf16", compile=True), load_model(path, precision="bf16")
    assert compiled.activation_bytes_per_pixel((1, 3, 32, 39)) > eager.activation_bytes_per_pixel((1, 3, 32, 39))
    assert compiled.activation_bytes_per_pixel((1, 3, 32, 40)) == eager.activation_bytes_per_pixel((1, 3, 32, 40))
    assert compiled.activation_bytes_per_pixel() > eager.activation_bytes_per_pixel()  # any size: the larger
