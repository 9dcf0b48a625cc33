"""Training several styles in one network, and adding a style to a trained model (init=)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_config, tiny_overrides
from PIL import Image
from tensorboard.backend.event_processing import event_file_loader

from stylenet.blend_path import blend_path, is_monotone, style_loss
from stylenet.checkpoint import load_inference_checkpoint, load_lightning_checkpoint, read_lightning_checkpoint
from stylenet.errors import ConfigError
from stylenet.evaluate_loss import loss_definition
from stylenet.evaluate_loss import style_loss as scoring_loss
from stylenet.inference.model import load_model
from stylenet.losses.perceptual import build_perceptual_loss
from stylenet.networks.style_rows import bake_style, norm_parameters
from stylenet.networks.transformer import TransformerNet
from stylenet.style_list import temporal_weights
from stylenet.train import train
from stylenet.training.module import StyleTransferModule


@pytest.fixture
def paintings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two generated paintings with style configs `stripes` and `dots` in ./configs/style of a temporary cwd."""
    folder = tmp_path / "configs" / "style"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for name, period in (("stripes", 6), ("dots", 3)):
        pixels = (torch.rand(48, 48, 3, generator=generator) * 80).to(torch.uint8).numpy()
        pixels[::period, :, 0] = 250  # a distinct texture each, so the two Gram targets differ
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nimage: {tmp_path / f'{name}.png'}\nsize: 48\n"
            f"content_weight: 1.0\nstyle_weight: {3.0 if name == 'dots' else 10.0}\ntv_weight: 1.0\n"
        )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _scalar_tags(run: Path) -> set[str]:
    tags = set()
    for events in (run / "tensorboard").glob("events.*"):
        for event in event_file_loader.EventFileLoader(str(events)).Load():
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_two_styles_train_in_one_network_and_the_model_lists_them(paintings: Path) -> None:
    cfg = compose_config([*tiny_overrides(paintings), "styles=[stripes,dots]"])
    result = train(cfg)
    network, metadata = load_inference_checkpoint(result["model"])
    assert result["model"].name == "stripes+dots.pt"
    assert network.num_styles == 2 and [s["name"] for s in metadata["styles"]] == ["stripes", "dots"]
    # each style keeps the weights of its own config
    assert [s["style_weight"] for s in metadata["styles"]] == [10.0, 3.0]
    tags = _scalar_tags(paintings / "run")
    for name in ("stripes", "dots"):
        assert f"val/{name}/total_loss" in tags and f"val/stylized/{name}" in tags
    assert {"val/total_loss", "train/total_loss"} <= tags
    lightning, lightning_metadata = load_lightning_checkpoint(paintings / "run" / "checkpoints" / "last.ckpt")
    assert [s["name"] for s in lightning_metadata["styles"]] == ["stripes", "dots"]
    assert lightning_metadata["loss"] == metadata["loss"]  # evaluate scores a .ckpt on its own loss too
    # the two rows were trained apart: the styles give different pictures
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        outputs = [network(photo, row) for row in torch.eye(2)]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3


def test_a_resume_keeps_the_style_rows_learning_rate_grouping(paintings: Path) -> None:
    overrides = [*tiny_overrides(paintings), "styles=[stripes,dots]", "trainer.max_steps=2"]
    train(compose_config([*overrides, "style_row_lr_scale=1"]))
    last = paintings / "run" / "checkpoints" / "last.ckpt"
    resume = [*overrides, "trainer.max_steps=4", f"ckpt_path={last}", f"paths.output_dir={paintings / 'resumed'}"]
    # the rows in a group of their own (scale 5) cannot take the single group's optimizer state
    with pytest.raises(ConfigError, match="style_row_lr_scale=1; resume with style_row_lr_scale=1"):
        train(compose_config([*resume, "style_row_lr_scale=5"]))
    assert not (paintings / "resumed").exists()
    train(compose_config([*resume, "style_row_lr_scale=1"]))
    assert read_lightning_checkpoint(paintings / "resumed" / "checkpoints" / "last.ckpt")["global_step"] == 4


def test_an_override_of_a_style_setting_applies_to_every_style(paintings: Path) -> None:
    cfg = compose_config([*tiny_overrides(paintings), "styles=[stripes,dots]", "style.style_weight=7"])
    _, metadata = load_inference_checkpoint(train(cfg)["model"])
    assert [s["style_weight"] for s in metadata["styles"]] == [7.0, 7.0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["styles=[stripes,nowhere]"], "no style named 'nowhere'"),
        (["styles=[stripes,stripes]"], "listed twice"),
        (["styles=[stripes,dots]", "style.image=x.png"], "style.image names one painting"),
    ],
)
def test_a_bad_style_list_is_one_line_before_any_work(paintings: Path, extra: list[str], message: str) -> None:
    cfg = compose_config([*tiny_overrides(paintings), *extra])
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (paintings / "run").exists()


def test_a_temporal_weight_per_style_trains_each_style_with_its_own(paintings: Path) -> None:
    cfg = compose_config(
        [*tiny_overrides(paintings), "styles=[stripes,dots]", "loss.temporal_weight={dots:4,stripes:0}"]
    )
    assert temporal_weights(cfg) == [0, 4]  # in training order, whatever the order given
    result = train(cfg)
    tags = _scalar_tags(paintings / "run")
    assert "train/temporal_loss" in tags
    _, metadata = load_inference_checkpoint(result["model"])
    assert metadata["loss"]["temporal_weight"] == {"dots": 4, "stripes": 0}
    loss_config, _ = loss_definition(metadata, "random")  # evaluate scores photos with it, no temporal term
    loss, _, _ = scoring_loss(metadata["styles"][1], loss_config)
    assert loss.temporal_pair is None


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("{stripes:1}", "loss.temporal_weight has no weight for 'dots'"),
        ("{stripes:1,dots:1,wave:1}", "loss.temporal_weight names 'wave', not a style of this run"),
        ("{stripes:-1,dots:1}", "loss.temporal_weight.stripes must be a number >= 0"),
    ],
)
def test_a_bad_temporal_weight_per_style_is_one_line_before_any_work(
    paintings: Path, weights: str, message: str
) -> None:
    cfg = compose_config([*tiny_overrides(paintings), "styles=[stripes,dots]", f"loss.temporal_weight={weights}"])
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (paintings / "run").exists()


def test_a_style_list_naming_a_missing_painting_is_refused_before_any_work(paintings: Path) -> None:
    (paintings / "dots.png").unlink()
    cfg = compose_config([*tiny_overrides(paintings), "styles=[stripes,dots]"])
    with pytest.raises(ConfigError, match="dots.png"):
        train(cfg)
    assert not (paintings / "run").exists()


@pytest.mark.parametrize(
    ("base_styles", "averaging"),
    [(["stripes"], []), (["stripes", "dots"], []), (["stripes", "dots"], ["weight_average_decay=0.5"])],
)
def test_init_adds_a_style_training_only_the_norms(
    paintings: Path, base_styles: list[str], averaging: list[str]
) -> None:
    """Also with a weight average: the average of weights that never change is those weights, exactly."""
    base_cfg = compose_config([*tiny_overrides(paintings / "base"), f"styles=[{','.join(base_styles)}]"])
    base_path = train(base_cfg)["model"]
    base, _ = load_inference_checkpoint(base_path)

    new = paintings / "new.png"
    Image.fromarray((torch.rand(40, 40, 3) * 255).to(torch.uint8).numpy()).save(new)
    overrides = ["style=custom", f"style.image={new}", "style.name=noise", f"init={base_path}"]
    result = train(compose_config([*tiny_overrides(paintings / "add"), *overrides, *averaging]))
    grown, metadata = load_inference_checkpoint(result["model"])

    assert [s["name"] for s in metadata["styles"]] == [*base_styles, "noise"]
    assert grown.num_styles == len(base_styles) + 1
    photo = torch.rand(1, 3, 24, 24)
    with torch.no_grad():  # the old styles are exactly as they were
        for i in range(base.num_styles):
            old = base(photo) if base.num_styles == 1 else base(photo, torch.eye(base.num_styles)[i])
            assert torch.equal(grown(photo, torch.eye(grown.num_styles)[i]), old)
    for key, value in bake_style(grown, torch.eye(grown.num_styles)[-1]).state_dict().items():
        if value.dim() == 4:  # every convolution is the base's
            assert torch.equal(value, base.state_dict()[key]), key


def test_init_trains_all_adds_a_style_on_new_shared_weights_keeping_the_old_rows(paintings: Path) -> None:
    base_path = train(compose_config([*tiny_overrides(paintings / "base"), "styles=[stripes,dots]"]))["model"]
    base, _ = load_inference_checkpoint(base_path)
    new = paintings / "new.png"
    Image.fromarray((torch.rand(40, 40, 3) * 255).to(torch.uint8).numpy()).save(new)
    overrides = ["style=custom", f"style.image={new}", "style.name=noise", f"init={base_path}", "init_trains=all"]
    result = train(compose_config([*tiny_overrides(paintings / "add"), *overrides]))
    grown, metadata = load_inference_checkpoint(result["model"])

    assert [s["name"] for s in metadata["styles"]] == ["stripes", "dots", "noise"]
    grown_state, base_state = grown.state_dict(), base.state_dict()
    rows = {f"{name}.{p}" for name, _ in grown.named_modules() for p in ("weight", "bias")} & set(base_state)
    rows = {key for key in rows if base_state[key].dim() == 2}  # (S, C): the style rows
    assert rows and all(torch.equal(grown_state[key][:2], base_state[key]) for key in rows)  # old rows as they were
    convolutions = [key for key, value in base_state.items() if value.dim() == 4]
    assert any(not torch.equal(grown_state[key], base_state[key]) for key in convolutions)  # the shared ones trained
    assert "train/keep_loss" in _scalar_tags(paintings / "add" / "run")
    checkpoint = read_lightning_checkpoint(paintings / "add" / "run" / "checkpoints" / "last.ckpt")
    assert not any(key.startswith("keeper.") for key in checkpoint["state_dict"])  # the frozen model is not saved


def test_adding_with_every_weight_resumes_only_as_it_started(paintings: Path) -> None:
    base_path = train(compose_config([*tiny_overrides(paintings / "base"), "styles=[stripes,dots]"]))["model"]
    new = paintings / "new.png"
    Image.fromarray((torch.rand(40, 40, 3) * 255).to(torch.uint8).numpy()).save(new)
    adding = [*tiny_overrides(paintings / "add"), "style=custom", f"style.image={new}", "style.name=noise"]
    train(compose_config([*adding, f"init={base_path}", "init_trains=all"]))
    last = paintings / "add" / "run" / "checkpoints" / "last.ckpt"
    resume = [*adding, f"init={base_path}", f"ckpt_path={last}", "trainer.max_steps=6"]
    with pytest.raises(ConfigError, match="init_trains=norms"):
        train(compose_config(resume))
    assert train(compose_config([*resume, "init_trains=all"]))["steps"] == 6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("init_trains=some", "init_trains"),
        ("init_shared_lr_scale=0", "init_shared_lr_scale"),
        ("init_keep_weight=-1", "init_keep_weight"),
        ("init_trains=all", "set init=MODEL"),
    ],
)
def test_bad_settings_for_adding_a_style_are_refused_before_any_work(
    paintings: Path, override: str, message: str
) -> None:
    cfg = compose_config([*tiny_overrides(paintings), override])
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (paintings / "run").exists()


def test_init_refuses_a_style_the_model_already_holds(paintings: Path) -> None:
    base_path = train(compose_config([*tiny_overrides(paintings / "base"), "styles=[stripes,dots]"]))["model"]
    cfg = compose_config([*tiny_overrides(paintings / "add"), "style=custom", "style.image=x", "style.name=dots"])
    cfg.init = str(base_path)
    (paintings / "x").write_bytes(b"")
    with pytest.raises(ConfigError, match="already holds a style named 'dots'"):
        train(cfg)


def test_the_blend_path_runs_from_one_style_to_the_other(paintings: Path) -> None:
    model = train(compose_config([*tiny_overrides(paintings), "styles=[stripes,dots]"]))["model"]
    stylizer = load_model(model, precision="fp32")
    photos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rows = blend_path(stylizer, photos, "stripes", "dots", points=3, vgg_weights="random")
    assert [row["w"] for row in rows] == [0.0, 0.5, 1.0]
    loss = style_loss(stylizer, "dots", vgg_weights="random")
    with torch.no_grad():  # the last point is the pure second style, scored with its own painting
        assert rows[-1]["style_loss_dots"] == pytest.approx(float(loss(stylizer(photos, style="dots"), photos).style))
    assert is_monotone([1, 2, 2, 3], rising=True) and not is_monotone([1, 3, 2], rising=True)


def test_style_rows_train_at_their_own_learning_rate() -> None:
    styles = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).unbind()
    loss = build_perceptual_loss(list(styles), "random", ["relu2_2"], ["relu1_1"], [1.0, 1.0], [10.0, 10.0], [1.0, 1.0])
    network = TransformerNet(width=0.25, num_residual_blocks=1, num_styles=2)
    adam = lambda params: torch.optim.Adam(params, lr=1e-3)  # noqa: E731
    module = StyleTransferModule(network, loss, adam, [{"name": "a"}, {"name": "b"}], style_row_lr_scale=5.0)
    shared, rows = module.configure_optimizers().param_groups
    assert rows["lr"] == pytest.approx(5e-3) and shared["lr"] == pytest.approx(1e-3)
    assert {id(p) for p in rows["params"]} == {id(p) for p in norm_parameters(network)}
    assert len(shared["params"]) + len(rows["params"]) == len(list(network.parameters()))
    # one style: a single group at the optimizer's own rate, the scale has nothing to act on
    one_loss = build_perceptual_loss(styles[0][None], "random", ["relu2_2"], ["relu1_1"], 1.0, 10.0, 1.0)
    single = StyleTransferModule(
        TransformerNet(width=0.25, num_residual_blocks=1), one_loss, adam, {"name": "a"}, style_row_lr_scale=5.0
    )
    assert [g["lr"] for g in single.configure_optimizers().param_groups] == [pytest.approx(1e-3)]
    # a style added with every weight training: its row at the optimizer's rate, the shared weights slower
    adding = StyleTransferModule(
        TransformerNet(width=0.25, num_residual_blocks=1), one_loss, adam, {"name": "a"}, shared_lr_scale=0.01
    )
    shared, rows = adding.configure_optimizers().param_groups
    assert shared["lr"] == pytest.approx(1e-5) and rows["lr"] == pytest.approx(1e-3)
    assert {id(p) for p in rows["params"]} == {id(p) for p in norm_parameters(adding.network)}


def test_the_kept_table_compares_each_old_style_before_and_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "scripts"))
    from multistyle_table import kept

    def report(totals: dict[str, float]) -> Path:
        styles = [
            {
                "style": {"name": name},
                "mean": {
                    "model": {"content_loss": 1.0, "style_loss": total - 1.0, "tv_loss": 0.0, "total_loss": total}
                },
            }
            for name, total in totals.items()
        ]
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({"styles": styles}))
        return path

    table = kept(str(report({"a": 2.0, "b": 4.0})), str(report({"a": 2.2, "b": 4.0, "new": 3.0})))
    assert "| a | with the added style | 1.0000 | 1.2000 | 0.0000 | 2.2000 | **1.100** |" in table
    assert "| b | with the added style | 1.0000 | 3.0000 | 0.0000 | 4.0000 | **1.000** |" in table
    assert "new" not in table  # only the styles the model had before
    assert table.splitlines()[-1].endswith("**1.050** |")
