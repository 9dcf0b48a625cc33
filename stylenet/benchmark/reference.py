"""The yardstick: Johnson's network and training step as the classic PyTorch example defines them.

This file is a measuring stick kept deliberately plain; it is not used in training. It follows the
architecture and the training step of pytorch/examples `fast_neural_style` (eager fp32, inputs in
0..255, a VGG16 loss network at relu1_2/relu2_2/relu3_3/relu4_3, style Grams computed once before
the loop as the example's `train()` does, so a step runs VGG on the output and the content only)
so that `stylenet benchmark` can report every figure as a ratio against the same baseline.
The VGG16 weights are random: the timing does not depend on them and nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
CONTENT_WEIGHT = 1e5
STYLE_WEIGHT = 1e10
LEARNING_RATE = 1e-3


class ConvLayer(nn.Module):
    """Reflection padding then a convolution."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour x2 upsampling, then reflection padding and a convolution."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, upsample: int):
        super().__init__()
        self.upsample = upsample
        self.conv = ConvLayer(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, mode="nearest", scale_factor=self.upsample))


class ReferenceTransformerNet(nn.Module):
    """Input and output are RGB in 0..255 scale, (B, 3, H, W); no output activation."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, 9, 1)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, 3, 2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, 3, 2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*(ResidualBlock(128) for _ in range(5)))
        self.deconv1 = UpsampleConvLayer(128, 64, 3, 1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, 3, 1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def reference_network() -> nn.Module:
    """The example's TransformerNet, randomly initialised, in eval mode."""
    return ReferenceTransformerNet().eval()


class ReferenceVGG16(nn.Module):
    """torchvision's vgg16().features up to relu4_3 (same layers, same indices), random weights.

    Built directly rather than through torchvision.models.vgg16 because that also allocates the
    ~120M-parameter classifier, which the loss never uses and which would distort peak memory.
    """

    SLICES = ((0, 4), (4, 9), (9, 16), (16, 23))  # ends at relu1_2, relu2_2, relu3_3, relu4_3

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512):
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = int(item)
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at relu1_2, relu2_2, relu3_3 and relu4_3."""
        out = []
        for start, end in self.SLICES:
            for module in self.features[start:end]:
                x = module(x)
            out.append(x)
        return out


def normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    """0..255 RGB -> ImageNet-normalised, as the example does per batch."""
    mean = batch.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = batch.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    return (batch.div(255.0) - mean) / std


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    flat = features.view(b, c, h * w)
    return flat.bmm(flat.transpose(1, 2)) / (c * h * w)


def reference_train_step_factory(
    batch_size: int = 4, size: int = 256, device: str | torch.device = "cpu"
) -> Callable[[], None]:
    """One full training step (forward, loss, backward, Adam step) on fixed random data."""
    device = torch.device(device)
    network = ReferenceTransformerNet().to(device).train()
    vgg = ReferenceVGG16().to(device).eval()
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    content = torch.rand(batch_size, 3, size, size, device=device) * 255
    style = (torch.rand(1, 3, size, size, device=device) * 255).repeat(batch_size, 1, 1, 1)
    # Once, before the loop, as the example's train() does: a step never sees the style image.
    with torch.no_grad():
        style_grams = [gram_matrix(f) for f in vgg(normalize_batch(style))]  # each (B, C, C)

    def step() -> None:
        optimizer.zero_grad()
        output = network(content)
        features_y = vgg(normalize_batch(output))
        features_x = vgg(normalize_batch(content))
        content_loss = CONTENT_WEIGHT * F.mse_loss(features_y[1], features_x[1])
        style_loss = sum(F.mse_loss(gram_matrix(fy), gs) for fy, gs in zip(features_y, style_grams, strict=True))
        total = content_loss + STYLE_WEIGHT * style_loss
        total.backward()
        optimizer.step()

    return step
