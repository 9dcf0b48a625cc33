"""Exporting a network of several styles: the weights as an input (one file, every blend) or one choice baked in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenet import load_model
from stylenet.checkpoint import save_inference_checkpoint
from stylenet.cli import main
from stylenet.errors import ConfigError
from stylenet.inference.export import ExportError, export
from stylenet.inference.style_choice import style_weights
from stylenet.networks.transformer import TransformerNet

NAMES = ["a", "b", "c"]
METADATA = {
    "styles": [
        {"name": name, "image": f"{name}.jpg", "size": 64, "style_weight": 1.0 + i} for i, name in enumerate(NAMES)
    ],
    "steps": 5,
}
SIZES = [(1, 21, 33), (2, 9, 16)]  # odd sizes, and a batch


def _network(num_styles: int = 3) -> TransformerNet:
    torch.manual_seed(0)
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=num_styles)
    with torch.no_grad():  # spread the weights, and give every style's norm rows their own values
        for parameter in network.parameters():
            if num_styles > 1 and parameter.dim() == 2:  # (S, C) rows of scale or shift
                parameter.add_(torch.randn_like(parameter) * 0.3)
            else:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return network.eval()


def _eager(network: TransformerNet, images: torch.Tensor, choice) -> torch.Tensor:
    with torch.no_grad():
        return network(images, style_weights(choice, NAMES))


@pytest.fixture(scope="module")
def network() -> TransformerNet:
    return _network()


@pytest.fixture(scope="module")
def exported(network: TransformerNet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The network with the style weights as an input, as .onnx and .pt2 (default file names)."""
    folder = tmp_path_factory.mktemp("multistyle")
    return {fmt: export(network, METADATA, folder, fmt) for fmt in ("onnx", "pt2")}


def test_the_styles_differ(network: TransformerNet) -> None:
    images = torch.rand(1, 3, 21, 33)
    outputs = [_eager(network, images, name) for name in NAMES]
    assert min((outputs[i] - outputs[j]).abs().max() for i, j in ((0, 1), (0, 2), (1, 2))) > 1e-2


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("choice", ["a=0.3,b=0.7", "c", {"a": 1, "b": 2, "c": 1}])
def test_one_file_runs_every_style_and_blend_as_eager_does(
    network: TransformerNet, exported: dict[str, Path], fmt: str, choice
) -> None:
    stylizer = load_model(exported[fmt], precision="fp32")
    assert exported[fmt].name == f"a+b+c.{fmt}"
    assert stylizer.styles == NAMES and stylizer.metadata["model"]["num_styles"] == 3
    for batch, height, width in SIZES:
        images = torch.rand(batch, 3, height, width)
        difference = (stylizer(images, style=choice) - _eager(network, images, choice)).abs().max().item()
        assert difference <= 1e-4, (fmt, choice, height, width, difference)


def test_the_onnx_file_takes_the_image_and_the_style_weights(exported: dict[str, Path]) -> None:
    import onnx

    model = onnx.load(str(exported["onnx"]))
    inputs = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert list(inputs) == ["image", "style"] and inputs["style"] == [3]
    assert [o.name for o in model.graph.output] == ["stylized"]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["styles"] == "a,b,c" and props["steps"] == "5" and "style" not in props


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize(
    ("choice", "stem", "blend"),
    [("a=0.3,b=0.7", "a-0.3_b-0.7", {"a": 0.3, "b": 0.7}), ("b", "b", {"b": 1.0})],
)
def test_a_baked_choice_is_a_single_style_model_named_after_it(
    network: TransformerNet, tmp_path: Path, fmt: str, choice: str, stem: str, blend: dict
) -> None:
    path = export(network, METADATA, tmp_path, fmt, style=choice)
    assert path.name == f"{stem}.{fmt}"
    stylizer = load_model(path, precision="fp32")
    metadata = stylizer.metadata
    assert metadata["model"]["num_styles"] == 1 and "styles" not in metadata and metadata["steps"] == 5
    assert metadata["style"]["name"] == choice and metadata["style"]["blend"] == blend
    assert stylizer.styles == [choice]
    if choice == "b":  # one style keeps what its model says about it
        assert metadata["style"]["image"] == "b.jpg" and metadata["style"]["style_weight"] == 2.0
    for batch, height, width in SIZES:
        images = torch.rand(batch, 3, height, width)
        difference = (stylizer(images) - _eager(network, images, choice)).abs().max().item()
        assert difference <= 1e-4, (fmt, choice, difference)


def test_a_single_style_model_exports_as_it_always_did(tmp_path: Path) -> None:
    network = _network(num_styles=1)
    metadata = {"style": {"name": "tiny", "image": "tiny.jpg"}, "steps": 2}
    plain = export(network, metadata, tmp_path / "plain", "pt2")
    named = export(network, metadata, tmp_path / "named", "pt2", style="tiny")
    assert plain.name == named.name == "tiny.pt2"
    assert load_model(plain).metadata == load_model(named).metadata
    images = torch.rand(1, 3, 17, 23)
    assert torch.equal(load_model(plain)(images), load_model(named)(images))
    with pytest.raises(ConfigError, match="unknown style 'wave': this model holds tiny"):
        export(network, metadata, tmp_path / "other", "pt2", style="wave")
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("d", "unknown style 'd': this model holds a, b, c"),
        ("a=0.5,d=0.5", "unknown style 'd'"),
        ("a=-1,b=2", "must be a number >= 0"),
        ("a=0,b=0", "sum to zero"),
        ({"a": float("nan")}, "must be a number >= 0"),
        ("a=x", "is not a number"),
    ],
)
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_a_bad_choice_is_refused_before_any_file(
    network: TransformerNet, tmp_path: Path, choice, message: str, fmt: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        export(network, METADATA, tmp_path / "out", fmt, style=choice)
    assert not (tmp_path / "out").exists()


def test_a_network_of_several_styles_needs_their_names(network: TransformerNet, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="holds 3 styles but its metadata names 1"):
        export(network, {"style": {"name": "a"}}, tmp_path / "out", "pt2")
    assert not (tmp_path / "out").exists()


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(network: TransformerNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_inference_checkpoint(tmp_path_factory.mktemp("pt") / "a+b+c.pt", network, METADATA)


def test_cli_export_style_bakes_the_choice(network: TransformerNet, checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(checkpoint), "--format", "pt2", "--style", "a=0.3,b=0.7", "-o", str(tmp_path)]) == 0
    path = tmp_path / "a-0.3_b-0.7.pt2"
    assert capsys.readouterr().out.strip() == f"wrote {path}"
    images = torch.rand(1, 3, 19, 24)
    assert (load_model(path)(images) - _eager(network, images, "a=0.3,b=0.7")).abs().max() <= 1e-4


def test_cli_export_without_style_keeps_every_style(network: TransformerNet, checkpoint: Path, tmp_path: Path) -> None:
    assert main(["export", str(checkpoint), "--format", "pt2", "-o", str(tmp_path)]) == 0
    stylizer = load_model(tmp_path / "a+b+c.pt2")
    images = torch.rand(1, 3, 19, 24)
    assert stylizer.styles == NAMES
    assert (stylizer(images, style="c") - _eager(network, images, "c")).abs().max() <= 1e-4


@pytest.mark.parametrize("choice", ["wave", "a=-1", "a=0,b=0"])
def test_cli_bad_style_is_one_line_and_writes_nothing(checkpoint: Path, tmp_path: Path, choice: str, capsys) -> None:
    status = main(["export", str(checkpoint), "--style", choice, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "out").exists()


# --- training's export.formats --------------------------------------------------------------------


@pytest.mark.slow
def test_training_exports_a_multistyle_model_that_loads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import compose_config, tiny_overrides
    from PIL import Image

    from stylenet.train import train

    folder = tmp_path / "configs" / "style"
    folder.mkdir(parents=True)
    for i, name in enumerate(("stripes", "dots")):
        pixels = (torch.rand(48, 48, 3, generator=torch.Generator().manual_seed(i)) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nimage: {tmp_path / f'{name}.png'}\nsize: 48\n"
            "content_weight: 1.0\nstyle_weight: 10.0\ntv_weight: 1.0\n"
        )
    monkeypatch.chdir(tmp_path)
    result = train(compose_config([*tiny_overrides(tmp_path), "styles=[stripes,dots]", "export.formats=[onnx,pt2]"]))
    reference = load_model(result["model"], precision="fp32")
    images = torch.rand(1, 3, 21, 30)
    assert sorted(p.name for p in result["exported"]) == ["stripes+dots.onnx", "stripes+dots.pt2"]
    for path in result["exported"]:
        stylizer = load_model(path, precision="fp32")
        assert stylizer.styles == ["stripes", "dots"]
        for choice in ("dots", "stripes=0.4,dots=0.6"):
            difference = (stylizer(images, style=choice) - reference(images, style=choice)).abs().max().item()
            assert difference <= 1e-4, (path.name, choice, difference)
