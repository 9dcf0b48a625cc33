"""Opening a model file cannot run code: crafted .pt2 files are refused in one line before torch reads them."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylenet import load_model
from stylenet.checkpoint import CheckpointError
from stylenet.cli import main
from stylenet.errors import ConfigError
from stylenet.inference.export import export
from stylenet.inference.model import resolve_device
from stylenet.inference.pt2_check import check_pt2
from stylenet.networks.transformer import TransformerNet

METADATA = {"style": {"name": "tiny", "image": "tiny.jpg", "size": 64}, "steps": 3}


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pt2 program as `stylenet export` writes it."""
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1).eval()
    return export(network, METADATA, tmp_path_factory.mktemp("program") / "tiny.pt2", "pt2")


class _Marker:
    """Pickles into a call that creates `path`: what a crafted file would run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(_Marker(marker), buffer)
    return buffer.getvalue()


def _rewrite(source: Path, target: Path, change: Callable[[str, bytes], tuple[str, bytes]]) -> Path:
    """`source` with each member's (name, bytes) passed through `change`, as a crafted copy would be made."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as crafted:
        for info in original.infolist():
            crafted.writestr(*change(info.filename, original.read(info)))
    return target


def _in_program(edit: Callable[[str], str]) -> Callable[[str, bytes], tuple[str, bytes]]:
    def change(name: str, data: bytes) -> tuple[str, bytes]:
        return name, (edit(data.decode()).encode() if name.endswith("models/model.json") else data)

    return change


def _crafted(kind: str, marker: Path) -> Callable[[str, bytes], tuple[str, bytes]]:
    command = f"__import__('os').system('touch {marker}')"
    if kind == "sample inputs":  # torch falls back to an unrestricted unpickler for these
        return lambda name, data: (name, _pickle(marker) if name.endswith("sample_inputs/model.pt") else data)
    if kind == "sample inputs named in capitals":  # torch's reader finds members whatever their case
        return lambda name, data: (
            (name.replace("sample_inputs/model.pt", "SAMPLE_INPUTS/Model.pt"), _pickle(marker))
            if name.endswith("sample_inputs/model.pt")
            else (name, data)
        )
    if kind == "a weight marked use_pickle":

        def change(name: str, data: bytes) -> tuple[str, bytes]:
            if name.endswith("model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                return name, json.dumps(config).encode()
            return name, (_pickle(marker) if name.endswith("data/weights/weight_0") else data)

        return change
    if kind == "a size that is Python":  # torch parses sizes with sympy.sympify, which evaluates them
        return _in_program(lambda text: text.replace("Symbol('s77', positive=True, integer=True)", command, 1))
    if kind == "a guard that is Python":  # torch runs the program's guards as code on every call
        return _in_program(lambda text: text.replace('"guards_code": []', json.dumps({"guards_code": [command]})[1:-1]))
    raise ValueError(kind)


KINDS = [
    "sample inputs",
    "sample inputs named in capitals",
    "a weight marked use_pickle",
    "a size that is Python",
    "a guard that is Python",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_crafted_pt2_is_refused_without_running_its_code(program: Path, tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "ran"
    crafted = _rewrite(program, tmp_path / "evil.pt2", _crafted(kind, marker))
    assert crafted.read_bytes() != program.read_bytes()
    with pytest.raises(CheckpointError, match="evil.pt2: refused") as refused:
        stylizer = load_model(crafted)
        stylizer(torch.rand(1, 3, 16, 16))  # were it loaded: guards run on the first call
    assert "\n" not in str(refused.value)
    assert not marker.exists()


def test_the_command_refuses_a_crafted_pt2_in_one_line(program: Path, tmp_path: Path, capfd) -> None:
    marker = tmp_path / "ran"
    crafted = _rewrite(program, tmp_path / "evil.pt2", _crafted("sample inputs", marker))
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    assert main(["stylize", str(crafted), str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evil.pt2: refused" in err[0]
    assert not marker.exists()


def test_the_old_export_format_is_refused(program: Path, tmp_path: Path) -> None:
    crafted = tmp_path / "old.pt2"
    crafted.write_bytes(program.read_bytes())
    with zipfile.ZipFile(crafted, "a") as archive:  # torch.export.load falls back to it, unchecked
        archive.writestr("version", "1")
    with pytest.raises(CheckpointError, match="old export format"):
        load_model(crafted)


def test_a_genuine_export_passes_the_check_and_runs(program: Path) -> None:
    check_pt2(program)
    images = torch.rand(2, 3, 20, 24)
    out = load_model(program)(images)
    assert out.shape == images.shape and torch.isfinite(out).all()


def test_a_corrupt_pt2_is_one_line_without_torch_logging(tmp_path: Path, capfd) -> None:
    for name, content in [("zeros.pt2", bytes(100)), ("empty_zip.pt2", None)]:
        path = tmp_path / name
        if content is None:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("a/b", "c")
        else:
            path.write_bytes(content)
        assert main(["stylize", str(path), str(tmp_path)]) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{name}: not a readable .pt2 program" in err[0], err


# --- devices -----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu", "tpu", "cuda:x", "CPU", ""])
def test_an_unknown_device_is_one_config_error_line(device: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        load_model("wave", device=device)
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    assert main(["stylize", "wave", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--device", device]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected auto, cpu, cuda or cuda:N" in err[0]


def test_a_gpu_index_the_machine_lacks_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="has 2 GPU"):
        resolve_device("cuda:2")


def test_the_app_refuses_an_unknown_device_before_building_its_page(capsys) -> None:
    assert main(["app", "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device gpu: expected auto, cpu, cuda or cuda:N" in err[0]
