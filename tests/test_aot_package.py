"""Packages compiled ahead of time (`stylenet export --format aoti`): every style and size, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage import data

from stylenet import load_model
from stylenet.checkpoint import CheckpointError, load_inference_checkpoint, save_inference_checkpoint, style_metadata
from stylenet.cli import main
from stylenet.errors import ConfigError
from stylenet.hardware import native_precision
from stylenet.inference import aot_package
from stylenet.inference.export import export
from stylenet.inference.fast import FastRunner
from stylenet.inference.style_choice import style_weights
from stylenet.networks import int8_convs
from stylenet.networks.style_rows import bake_style
from stylenet.networks.transformer import TransformerNet

NAMES = ["a", "b", "c"]
pytestmark = pytest.mark.slow  # two ahead-of-time compilations (a minute each on two cores)


@pytest.fixture(scope="module")
def network() -> TransformerNet:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=len(NAMES))
    with torch.no_grad():  # spread the weights, and give every style's norm rows their own values
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * (0.3 if parameter.dim() == 2 else 0.1))
    return network.eval()


@pytest.fixture(scope="module")
def package(network: TransformerNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The network compiled by the command line, with the style weights as an input."""
    folder = tmp_path_factory.mktemp("aoti")
    metadata = {**style_metadata([{"name": name} for name in NAMES]), "steps": 3}
    checkpoint = save_inference_checkpoint(folder / "abc.pt", network, metadata)
    assert main(["export", str(checkpoint), "--format", "aoti", "-o", str(folder)]) == 0
    return folder / "abc.aoti.pt2"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * torch.log10(1 / (a - b).pow(2).mean()).item()


def _fast_eager(network: TransformerNet, images: torch.Tensor, choice: str, precision: str) -> torch.Tensor:
    """The eager fast path in `precision`: what the package compiles."""
    return FastRunner(bake_style(network, style_weights(choice, NAMES)), torch.device("cpu"), precision)(images).float()


@pytest.mark.parametrize("choice", ["b", "a=0.3,c=0.7"])
def test_the_package_runs_every_style_and_batch_as_the_eager_network(
    network: TransformerNet, package: Path, choice: str
) -> None:
    stylizer = load_model(package)
    assert stylizer.styles == NAMES and stylizer.backend == "aoti"
    precision = stylizer.metadata["compiled"]["precision"]
    assert stylizer.precision == precision == native_precision("cpu")
    for batch, height, width in [(1, 32, 48), (2, 20, 28), (1, 8, 8)]:
        images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
        with torch.no_grad():
            eager = network(images, style_weights(choice, NAMES))
        out = stylizer(images, style=choice)
        assert out.shape == images.shape and out.dtype == torch.float32
        if precision == "fp32":
            assert (out - eager).abs().max().item() <= 1e-4, (choice, height, width)
        else:  # as close to fp32 as the eager path in the same precision, give or take rounding
            fast = _fast_eager(network, images, choice, precision)
            assert _psnr(out, eager) >= _psnr(fast, eager) - 1.0, (choice, height, width)


def test_other_sizes_run_padded_to_multiples_of_four(network: TransformerNet, package: Path) -> None:
    compiled = torch._inductor.aoti_load_package(str(package))
    weights = style_weights("a", NAMES)
    for height, width in [(21, 33), (9, 14), (30, 8)]:
        images = torch.rand(1, 3, height, width)
        out = load_model(package, style="a")(images)
        padded = F.pad(images, (0, -width % 4, 0, -height % 4), mode="reflect")
        assert out.shape == images.shape
        assert torch.equal(out, compiled(padded, weights)[..., :height, :width])


def test_the_package_needs_nothing_of_stylenet_to_run(network: TransformerNet, package: Path) -> None:
    compiled = torch._inductor.aoti_load_package(str(package))
    images = torch.rand(1, 3, 24, 36)
    weights = style_weights("c", NAMES)
    with torch.no_grad():
        eager = network(images, weights)
    fast = _fast_eager(network, images, "c", load_model(package).precision)
    assert _psnr(compiled(images, weights), eager) >= _psnr(fast, eager) - 1.0


def test_the_package_records_how_it_was_compiled(package: Path) -> None:
    metadata = load_model(package).metadata
    assert metadata["compiled"]["instruction_set"] == aot_package.instruction_set()
    assert metadata["compiled"]["torch"] == torch.__version__
    assert metadata["model"]["num_styles"] == len(NAMES) and metadata["steps"] == 3


def test_another_cpu_is_told_to_export_again(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aot_package, "instruction_set", lambda: "sse9")
    with pytest.raises(CheckpointError, match="this one has sse9: export the model again"):
        load_model(package)


def test_the_package_runs_only_in_its_own_precision(package: Path) -> None:
    other = "fp32" if load_model(package).precision == "bf16" else "bf16"
    with pytest.raises(ConfigError, match="the precision it was compiled in"):
        load_model(package, precision=other)


def test_a_damaged_package_is_one_line(package: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.aoti.pt2"
    damaged.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    with pytest.raises(CheckpointError) as raised:
        load_model(damaged)
    assert "\n" not in str(raised.value)


def test_a_package_renamed_to_a_plain_pt2_is_not_run(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed = tmp_path / "abc.pt2"
    renamed.write_bytes(package.read_bytes())

    def loaded(path: str) -> None:
        raise AssertionError(f"{path} was loaded")

    monkeypatch.setattr(torch._inductor, "aoti_load_package", loaded)
    with pytest.raises(CheckpointError, match="named as a plain .pt2 program; not run"):
        load_model(renamed)


def test_format_all_writes_the_portable_files_only(network: TransformerNet, tmp_path: Path) -> None:
    metadata = {**style_metadata([{"name": name} for name in NAMES]), "steps": 3}
    checkpoint = save_inference_checkpoint(tmp_path / "abc.pt", network, metadata)
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["abc.onnx", "abc.pt2"]


def test_an_fp32_package_matches_the_eager_network(network: TransformerNet, tmp_path: Path) -> None:
    metadata = {**style_metadata([{"name": name} for name in NAMES]), "steps": 3}
    path = export(network, metadata, tmp_path, "aoti", precision="fp32")
    stylizer = load_model(path, style="a=0.3,c=0.7")
    assert path.name == "a+b+c.aoti.pt2" and stylizer.precision == "fp32"
    images = torch.rand(2, 3, 24, 36)
    with torch.no_grad():
        eager = network(images, style_weights("a=0.3,c=0.7", NAMES))
    assert (stylizer(images) - eager).abs().max().item() <= 1e-4


@pytest.mark.skipif(int8_convs.available() is not None, reason=f"int8: {int8_convs.available()}")
def test_an_int8_package_runs_the_int8_convolutions_near_the_eager_network(tmp_path: Path) -> None:
    """Its program holds oneDNN's int8 convolution for the first layer and both of each residual block's,
    and the trained quickstart model's package is within the bf16 floor (35 dB) of the eager fp32 network."""
    network, metadata = load_inference_checkpoint(Path(__file__).parent / "data" / "quickstart_starry.pt")
    program = aot_package._program(network.eval(), "int8")
    int8_calls = [node for node in program.graph.nodes if node.target == torch.ops.onednn.qconv_pointwise.default]
    assert len(int8_calls) == len(int8_convs.quantized_layers(network)) == 1 + 2 * len(network.residuals)
    path = export(network, metadata, tmp_path, "aoti", precision="int8")
    stylizer = load_model(path, precision="int8")
    assert stylizer.precision == "int8" and stylizer.backend == "aoti"
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    photo = F.interpolate(photo, size=(96, 128), mode="bilinear", antialias=True).clamp(0, 1)
    with torch.no_grad():
        eager = network(photo).clamp(0, 1)
    assert _psnr(stylizer(photo), eager) >= 35


def test_no_working_compiler_is_one_line_before_the_model_loads(network: TransformerNet, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    checkpoint = save_inference_checkpoint(tmp_path / "abc.pt", network, style_metadata([{"name": n} for n in NAMES]))
    out = tmp_path / "packages"
    done = subprocess.run(
        [sys.executable, "-m", "stylenet.cli", "export", str(checkpoint), "--format", "aoti", "-o", f"{out}/"],
        env=os.environ | {"CXX": str(tmp_path / "no-such-compiler")},  # torch reads CXX when it is imported
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: a compiled package needs a C++ compiler and none works here: install g++ (or clang++), "
        "or name one with the CXX environment variable; --format onnx and pt2 need none\n"
    )
    assert not out.exists()
