"""The memory estimates that decide tiling, checked against peaks measured in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylenet.checkpoint import save_inference_checkpoint
from stylenet.inference import memory
from stylenet.networks.transformer import TransformerNet

GB = 1 << 30

QUICKSTART = Path(__file__).parent / "data" / "quickstart_starry.pt"

# Peak resident memory of one forward pass, above what the process held just before it. A fresh
# process, so that no earlier allocation's freed pages hide the peak; VmHWM rather than ru_maxrss,
# which Linux carries over from the forked parent (here: pytest, whatever it holds by then).
_MEASURE = """
import json, sys, torch
from stylenet import load_model
def status(key):
    line = next(line for line in open("/proc/self/status") if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024
path, precision, side = sys.argv[1], sys.argv[2], int(sys.argv[3])
stylizer = load_model(path, precision=precision)
images = torch.rand(1, 3, side, side)
stylizer(torch.rand(1, 3, 64, 64), tile=None)  # kernels chosen, workspaces made
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM restarts from here: loading's own peak does not count
before = status("VmRSS")
stylizer(images, tile=None)
peak = status("VmHWM")
print(json.dumps({"measured": peak - before, "estimate": stylizer.activation_bytes_per_pixel() * side * side}))
"""


# A narrow network, and full-width ones with the options that change which activations stand
# together (docs/video.md); at a quarter of the width the input and output copies hide the features.
OPTIONS = {"narrow": {"width": 0.25}, "bilinear": {"upsample": "bilinear"}, "blur": {"downsample": "blur"}}


@pytest.fixture(scope="module")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("m")
    models = {}
    for name, options in OPTIONS.items():
        torch.manual_seed(0)
        network = TransformerNet(num_residual_blocks=1, **options).eval()
        models[name] = save_inference_checkpoint(folder / f"{name}.pt", network, {"steps": 1})
    return models


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from Linux's /proc")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("which", ["quickstart", *OPTIONS])
def test_the_estimate_bounds_a_measured_peak_without_overshooting_it(small_models, which, precision) -> None:
    path = QUICKSTART if which == "quickstart" else small_models[which]
    command = [sys.executable, "-c", _MEASURE, str(path), precision, "768"]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    measured, estimate = result["measured"], result["estimate"]
    assert measured <= estimate <= 2.5 * measured, (which, precision, measured, estimate)


def test_the_estimate_follows_the_network_width_and_precision() -> None:
    wide = memory.activation_bytes_per_pixel({"width": 1.0}, "fp32", fast=False)
    narrow = memory.activation_bytes_per_pixel({"width": 0.5}, "fp32", fast=False)
    half = memory.activation_bytes_per_pixel({"width": 1.0}, "bf16", fast=True)
    assert narrow < wide and half < wide / 2


@pytest.mark.parametrize(
    ("text", "size"), [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GB", 3 << 29), ("2gib", 2 << 30)]
)
def test_sizes_are_read_with_their_units(text: str, size: int) -> None:
    assert memory.parse_size(text) == size


@pytest.mark.parametrize("text", ["8", "lots", "-1G", ""])
def test_a_size_without_a_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unit"):
        memory.parse_size(text)


def test_whole_images_run_whole_and_a_thin_one_is_cut_along_its_long_side_only(capsys) -> None:
    per_pixel = 100.0
    assert memory.choose_tile(per_pixel, (1, 3, 500, 500), limit=per_pixel * 500 * 500) is None
    shape = (1, 3, 200, 20000)
    tile = memory.choose_tile(per_pixel, shape, limit=per_pixel * 200 * 20000 / 4, reference=False)
    assert tile is not None and tile >= 200 * 3
    assert memory.tiled_bytes(per_pixel, 1, 200, 20000, tile, False) <= per_pixel * 200 * 20000 / 4
    assert "px tiles" in capsys.readouterr().err


def test_no_room_even_for_the_smallest_tile_is_one_line() -> None:
    with pytest.raises(memory.MemoryLimitError, match="even in tiles"):
        memory.choose_tile(100.0, (1, 3, 4000, 4000), limit=16 * 4000 * 4000, name="huge.png")


def test_the_default_limit_is_half_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 24 << 30)
    assert memory.memory_limit(None) == 12 << 30
    assert memory.memory_limit(1 << 30) == 1 << 30
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": None)
    assert memory.memory_limit(None) == memory.FALLBACK_LIMIT


def test_gpu_memory_cached_by_torch_counts_as_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """After one large image, torch keeps its blocks; the next image may use them."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * GB, 80 * GB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 10 * GB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 * GB)
    assert memory.available_memory("cuda") == 11 * GB
