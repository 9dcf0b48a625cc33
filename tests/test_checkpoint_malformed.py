"""Hand-made malformed model files: each is refused in one CheckpointError line, never a traceback."""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from stylenet import load_model
from stylenet.checkpoint import (
    CheckpointError,
    load_inference_checkpoint,
    load_lightning_checkpoint,
    read_lightning_checkpoint,
    save_inference_checkpoint,
)
from stylenet.inference.export import export
from stylenet.inference.model import load_network
from stylenet.losses.vgg import LossNetworkError, check_weights
from stylenet.networks.transformer import TransformerNet

CONFIG = {"width": 0.25, "num_residual_blocks": 1, "upsample": "nearest", "norm": "instance"}
LOADED = {**CONFIG, "num_styles": 1, "downsample": "strided"}  # what CONFIG loads as


def _network(**changes: Any) -> TransformerNet:
    return TransformerNet(**{**CONFIG, **changes})


def _pt_payload(tmp_path: Path) -> dict[str, Any]:
    path = save_inference_checkpoint(tmp_path / "good.pt", _network(), {"style": {"name": "t"}, "steps": 3})
    return torch.load(path, weights_only=True)


def _refused(load, path: Path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as refused:
        load(path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    return message


def _pt_with(tmp_path: Path, change) -> Path:
    payload = _pt_payload(tmp_path)
    change(payload)
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    return path


PT_CASES = {
    "no model": (lambda p: p.pop("model"), "network description"),
    "model not a table": (lambda p: p.update(model="johnson"), "network description"),
    "a key missing": (lambda p: p["model"].pop("norm"), "network description"),
    "an unknown key": (lambda p: p["model"].update(depth=3), "network description"),
    "width a word": (lambda p: p["model"].update(width="abc"), "model.width"),
    "width negative": (lambda p: p["model"].update(width=-1), "model.width"),
    "blocks a word": (lambda p: p["model"].update(num_residual_blocks="x"), "model.num_residual_blocks"),
    "unknown norm": (lambda p: p["model"].update(norm="foo"), "model.norm"),
    "no weights": (lambda p: p.pop("state_dict"), "no weights"),
    "weights a list": (lambda p: p.update(state_dict=[1, 2]), "no weights"),
    "weights not tensors": (lambda p: p.update(state_dict={"a": 1}), "named tensors"),
    "more blocks declared": (lambda p: p["model"].update(num_residual_blocks=2), "do not match.*missing"),
    "other width declared": (lambda p: p["model"].update(width=0.5), "do not match.*another shape"),
    "style a word": (lambda p: p.update(style="starry"), "style"),
    "steps a word": (lambda p: p.update(steps="many"), "steps"),
}


@pytest.mark.parametrize("case", PT_CASES)
def test_malformed_pt_files_are_refused_in_one_line(tmp_path: Path, case: str) -> None:
    change, match = PT_CASES[case]
    path = _pt_with(tmp_path, change)
    _refused(load_inference_checkpoint, path, match)
    _refused(load_model, path, match)  # what `stylenet stylize` calls


def test_weights_of_another_network_name_what_differs(tmp_path: Path) -> None:
    path = _pt_with(tmp_path, lambda p: p.update(state_dict=_network(num_residual_blocks=2).state_dict()))
    message = _refused(load_inference_checkpoint, path, "do not match")
    assert "unexpected" in message and "residuals.1." in message


def test_a_well_formed_pt_still_loads(tmp_path: Path) -> None:
    network, metadata = load_inference_checkpoint(_pt_with(tmp_path, lambda p: None))
    assert metadata["steps"] == 3 and network.config.to_dict() == LOADED


def _ckpt(tmp_path: Path, **changes: Any) -> Path:
    """A stylenet Lightning checkpoint as training writes it (the parts inference reads)."""
    network = _network()
    checkpoint = {
        "global_step": 5,
        "state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
        "stylenet": {"model": dict(CONFIG), "style": {"name": "t"}},
    }
    for key, value in changes.items():
        if value is None:
            checkpoint.pop(key)
        else:
            checkpoint[key] = value
    path = tmp_path / "bad.ckpt"
    torch.save(checkpoint, path)
    return path


CKPT_CASES = {
    "no stylenet info": ({"stylenet": None}, "not one written by stylenet"),
    "info not a table": ({"stylenet": "x"}, "no network description"),
    "no model": ({"stylenet": {"style": {"name": "t"}}}, "network description"),
    "bad norm": ({"stylenet": {"model": {**CONFIG, "norm": "foo"}, "style": {"name": "t"}}}, "model.norm"),
    "other network": ({"stylenet": {"model": {**CONFIG, "num_residual_blocks": 3}}}, "do not match"),
    "no weights": ({"state_dict": None}, "no network description or weights"),
    "step a word": ({"global_step": "x"}, "global_step"),
    "no step": ({"global_step": None}, "global_step"),
    "steps before a word": (
        {"stylenet": {"model": dict(CONFIG), "style": {"name": "t"}, "steps_before": "x"}},
        "steps_before",
    ),
    "not a dict": ({}, None),
}


@pytest.mark.parametrize("case", CKPT_CASES)
def test_malformed_ckpt_files_are_refused_in_one_line(tmp_path: Path, case: str) -> None:
    changes, match = CKPT_CASES[case]
    path = _ckpt(tmp_path, **changes)
    if case == "not a dict":
        torch.save([1, 2, 3], path)
        match = "not one written by stylenet"
    _refused(load_lightning_checkpoint, path, match)
    _refused(load_model, path, match)  # what `stylize` and `export` open


def test_a_well_formed_ckpt_loads_and_tells_its_step(tmp_path: Path) -> None:
    network, metadata = load_lightning_checkpoint(_ckpt(tmp_path))
    assert metadata["steps"] == 5 and network.config.to_dict() == LOADED and not network.training
    assert read_lightning_checkpoint(_ckpt(tmp_path))["global_step"] == 5
    tuned = {"model": dict(CONFIG), "style": {"name": "t"}, "steps_before": 7000}  # a fine-tuning run's
    assert load_lightning_checkpoint(_ckpt(tmp_path, stylenet=tuned))[1]["steps"] == 7005


def test_unreadable_files_are_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("not a model")
    _refused(load_inference_checkpoint, tmp_path / "text.pt", "not a readable")
    (tmp_path / "text.ckpt").write_text("not a model")
    _refused(load_lightning_checkpoint, tmp_path / "text.ckpt", "not a readable")


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".onnx", ".pt2"])
def test_a_git_lfs_pointer_in_place_of_a_model_says_so(tmp_path: Path, suffix: str) -> None:
    # What a clone without Git LFS holds where a tracked model should be.
    pointer = tmp_path / f"model{suffix}"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 3408189\n")
    message = _refused(load_model, pointer, "is a Git LFS pointer, not the model")
    assert "git lfs pull" in message
    if suffix in (".pt", ".ckpt"):
        _refused(load_network, pointer, "is a Git LFS pointer")  # export, and training's init= and finetune=
        reader = load_inference_checkpoint if suffix == ".pt" else read_lightning_checkpoint  # pack; ckpt_path=
        _refused(reader, pointer, "is a Git LFS pointer")


def test_metadata_read_from_another_file_cannot_override_the_networks_settings(tmp_path: Path) -> None:
    """Metadata loaded from a five-style file, saved with one style baked out of it, still loads."""
    single = _network()
    stale = {"model": {**CONFIG, "num_styles": 5}, "state_dict": {}, "format": "old", "steps": 7}
    path = save_inference_checkpoint(tmp_path / "baked.pt", single, stale)
    network, metadata = load_inference_checkpoint(path)
    assert network.num_styles == 1 and metadata["steps"] == 7
    for name, value in single.state_dict().items():
        assert torch.equal(network.state_dict()[name], value)


def _compiled_package_layout(path: Path) -> Path:
    """A zip laid out as an AOTInductor package, with stylenet's metadata and a stand-in for its library."""
    import zipfile

    from stylenet.inference.metadata import METADATA_KEY, describe

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data/aotinductor/model/model.so", b"\x7fELF not a real library")
        archive.writestr(f"model/extra/{METADATA_KEY}.json", describe({"style": {"name": "t"}, "steps": 3}))
    return path


def test_a_compiled_package_named_as_a_plain_pt2_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading a package runs its machine code; a plain .pt2 promises it cannot run code, so none is loaded.
    def loaded(path: str) -> None:
        raise AssertionError(f"{path} was loaded")

    monkeypatch.setattr(torch._inductor, "aoti_load_package", loaded)
    message = _refused(load_model, _compiled_package_layout(tmp_path / "model.pt2"), "named as a plain .pt2")
    assert "rename it to end in .aoti.pt2" in message


class _RunsCode:
    """Unpickled without restriction, this would create `marker`: what a malicious model file does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_that_would_run_code_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker)}, evil)
    message = _refused(load_inference_checkpoint, evil, "refused: it holds more than weights and plain values")
    assert "weights_only" not in message and not marker.exists()


def test_code_in_torchs_older_format_is_refused_not_called_damaged(tmp_path: Path) -> None:
    # torch's format before its zip archive is a plain pickle stream, so the zip test alone said "damaged".
    marker = tmp_path / "code_ran"
    evil = tmp_path / "old.pt"
    torch.save({"model": _RunsCode(marker)}, evil, _use_new_zipfile_serialization=False)
    message = _refused(load_inference_checkpoint, evil, "refused: it holds more than weights and plain values")
    assert "damaged" not in message and "weights_only" not in message and not marker.exists()


def test_a_truncated_file_in_torchs_older_format_is_damaged(tmp_path: Path) -> None:
    cut = tmp_path / "old.pt"
    torch.save({"model": {"w": torch.zeros(64)}}, cut, _use_new_zipfile_serialization=False)
    cut.write_bytes(cut.read_bytes()[:40])
    _refused(load_inference_checkpoint, cut, "damaged, truncated or not a file torch wrote")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_a_bare_pickle_is_refused_unread_without_torchs_warning(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": _RunsCode(marker)}, protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "Detected pickle protocol" note came before the one line
        _refused(load_inference_checkpoint, evil, "a bare pickle, not a file torch wrote")
        with pytest.raises(LossNetworkError, match="a bare pickle"):
            check_weights(str(evil))
    assert not marker.exists()


def test_a_truncated_model_file_says_so(tmp_path: Path) -> None:
    good = save_inference_checkpoint(tmp_path / "good.pt", _network(), {"style": {"name": "t"}, "steps": 3})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(load_inference_checkpoint, cut, "damaged, truncated or not a file torch wrote")


def _with_compressed_zeros(model: Path, target: Path, megabytes: int = 8) -> Path:
    """`model` with one more member: megabytes of zeros, deflated to a few kB (as a zip bomb is)."""
    target.write_bytes(model.read_bytes())
    with zipfile.ZipFile(target, "a") as archive:
        root = archive.namelist()[0].split("/", 1)[0]
        archive.writestr(f"{root}/padding", bytes(megabytes << 20), compress_type=zipfile.ZIP_DEFLATED)
    assert target.stat().st_size < model.stat().st_size + (100 << 10)
    return target


def test_a_file_that_would_unpack_to_far_more_than_its_size_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = save_inference_checkpoint(tmp_path / "good.pt", _network(), {"style": {"name": "t"}, "steps": 3})
    bomb = _with_compressed_zeros(good, tmp_path / "bomb.pt")

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.load read the file")

    monkeypatch.setattr(torch, "load", never)
    message = _refused(load_inference_checkpoint, bomb, "refused, its contents would unpack to 9 MB")
    assert "which no file torch writes does" in message
    _refused(load_model, bomb, "would unpack")
    with pytest.raises(LossNetworkError, match="refused, its contents would unpack"):
        check_weights(str(bomb), setting="--vgg-weights ")


def test_a_pt2_program_that_would_unpack_to_far_more_than_its_size_is_refused(tmp_path: Path) -> None:
    program = export(_network().eval(), {"style": {"name": "t"}, "steps": 3}, tmp_path / "good.pt2", "pt2")
    _refused(load_model, _with_compressed_zeros(program, tmp_path / "bomb.pt2"), "refused, its contents would unpack")
    assert load_model(program, precision="fp32") is not None  # the file it was made from loads


def test_a_folder_named_as_a_model_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model.pt"
    folder.mkdir()
    for load in (load_model, load_inference_checkpoint, load_network):
        _refused(load, folder, "a folder, not a model file")


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_an_exported_model_where_a_trained_one_is_needed_says_so(tmp_path: Path, fmt: str) -> None:
    exported = export(_network().eval(), {"style": {"name": "t"}, "steps": 3}, tmp_path / f"t.{fmt}", fmt)
    # export, init=, finetune= and the benchmark's --model rebuild the network, which an export does not hold.
    _refused(load_network, exported, "an exported model, a graph without the network it came from")


def test_a_trained_model_given_as_a_training_checkpoint_says_what_to_use(tmp_path: Path) -> None:
    model = save_inference_checkpoint(tmp_path / "starry.pt", _network(), {"style": {"name": "t"}, "steps": 3})
    message = _refused(read_lightning_checkpoint, model, "a trained model, not a training checkpoint")
    assert "checkpoints/last.ckpt" in message and "finetune=" in message


def test_a_file_moved_aside_keeps_its_whole_suffix(tmp_path: Path) -> None:
    from stylenet.checkpoint import move_aside

    for name in ("starry.aoti.pt2", "starry.pt", "starry.onnx"):
        (tmp_path / name).write_bytes(b"an older file")
        move_aside(tmp_path / name)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [re.sub(r"\.\d{8}-\d{6}", ".STAMP", name) for name in names] == [
        "starry.STAMP.aoti.pt2",
        "starry.STAMP.onnx",
        "starry.STAMP.pt",
    ]


def test_a_file_of_another_kind_is_not_called_unsafe(tmp_path: Path) -> None:
    page = tmp_path / "model.pt"  # a download that fetched the web page instead
    page.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    message = _refused(load_inference_checkpoint, page, "damaged, truncated or not a file torch wrote")
    assert "refused" not in message
