"""The fast inference path: the network cast to bf16/fp16 in one layout, optionally compiled.

Measured on CPUs with AMX (docs/performance.md), autocast leaves most of the time in
dtype and layout conversions around instance norm and reflection padding: casting the weights
once and keeping activations in one dtype and layout removes them. The copy also runs the
network's fast layers (`stylenet.networks.fast_ops`: batch-norm kernels for instance norm,
sub-pixel upsampling), and `torch.compile` (Inductor, with weights frozen into the graph) fuses
padding, normalisation and ReLU into a few loops around oneDNN's convolutions. The eager fp32
network stays available (`precision="fp32"`, `compile=False`) as the reference every fast path
is checked against.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable

import torch
from torch import nn

from stylenet import hardware
from stylenet.networks import int8_convs
from stylenet.networks.frame_buffers import KEEP_BYTES

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# "int8": bf16 activations, with the first layer's and the residual blocks' convolutions in int8 where
# the network runs compiled on a CPU (`stylenet.networks.int8_convs`).
INT8 = "int8"

# From this many pixels an image, the eager path on a CPU runs a batch one image at a time: one
# image's activations are large enough to keep both cores busy, and the deferred norms
# (`stylenet.networks.deferred_norm`) serve single images only. On a 2-core Xeon with AMX, four
# images in one call took 0.92x the time of one at a time at 256x256, 1.01x at 384x384, 1.10x at
# 512x512 and 1.38x at 1920x1080 (`python scripts/batch_split_speed.py`).
SPLIT_PIXELS = 384 * 384


def memory_format(device: torch.device) -> torch.memory_format:
    """The activation layout that measured faster on `device` (docs/performance.md).

    On CPUs oneDNN runs NHWC natively and channels-last wins; on an H200 the fp16 network ran
    slower in channels-last than in NCHW at 1080p (25.4 against 20.7 ms, `stylenet benchmark`).
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


# Every runner compiles the same code (`TransformerNet.forward`) for a network of its own, and Dynamo
# counts all of them against one limit per process, 8 by default: a process that had compiled a dozen
# networks (styles, blends, bf16 and int8 forms) ran the last of them uncompiled, with a warning.
# The setting is Dynamo's, for the whole process; it is only ever raised here.
RECOMPILE_LIMIT = 64


def recompile_limit_name() -> str:
    """Dynamo's name of that limit ("cache_size_limit" before PyTorch 2.7).

    Looked up when compiling, not at import: `torch._dynamo` costs about 150 MB of resident memory
    and most of a second to import, which a process that never compiles should not pay."""
    return "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"


def _compile(network: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    # fullgraph: a graph break or too many recompilations raise instead of quietly running parts
    # of the network eagerly, so that a runner that says it is compiled runs one compiled graph.
    limit = recompile_limit_name()
    setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), RECOMPILE_LIMIT))
    if device.type != "cpu":
        return torch.compile(network, fullgraph=True)
    # Freezing folds the weights into the graph as constants, which lets Inductor pre-pack them for
    # oneDNN. Dynamic shapes: one compilation serves every image size (tiles, video, folders).
    return torch.compile(network, fullgraph=True, dynamic=True, options={"freezing": True})


class FastRunner:
    """Maps (N, 3, H, W) fp32 images to the network's output in `precision`.

    `network` itself is left untouched (a copy is cast), so callers keep the fp32 module for
    tiling statistics and export. If compilation fails (no C++ compiler, an unsupported
    platform, a graph break), the call prints a one-line warning and the eager path runs from
    then on; `compiled` then reads False.

    `eager_for_fresh_pages`: images whose compiled frame would map its largest activations afresh
    run the eager path instead (see `compiles`); False runs every image compiled (the benchmark's
    compiled rows, which time the compiled graph itself).

    `precision="int8"` (CPU, compiled only): the compiled graph runs the first layer's and the residual
    blocks' convolutions in int8 (`stylenet.networks.int8_convs`, calibrated when the runner is
    built), at every size (see `compiles`); images that run the eager path (tiles, or all of them where
    compilation failed) run it in bf16.
    """

    def __init__(
        self,
        network: nn.Module,
        device: torch.device,
        precision: str,
        compile: bool = False,
        eager_for_fresh_pages: bool = True,
    ):
        if precision == INT8 and (device.type != "cpu" or not compile):
            raise ValueError("int8 runs compiled on CPUs only: compile=True on a CPU device")
        self.device, self.layout = device, memory_format(device)
        self.int8 = precision == INT8
        self.dtype = torch.bfloat16 if self.int8 else DTYPES[precision]
        self.module = copy.deepcopy(network).eval().to(device=device, dtype=self.dtype, memory_format=self.layout)
        self.module.use_fast_ops()
        self.module.requires_grad_(False)
        if self.int8:
            int8_convs.quantize(self.module, copy.deepcopy(network))
        self._compiled = _compile(self.module, device) if compile else None
        self.eager_for_fresh_pages = eager_for_fresh_pages

    def uncompiled(self) -> FastRunner:
        """A runner sharing this one's cast module, always eager."""
        runner = copy.copy(self)
        runner._compiled = None
        return runner

    @property
    def compiled(self) -> bool:
        """Whether calls run the compiled network: False when compile is off or has failed."""
        return self._compiled is not None

    def compiles(self, shape: tuple[int, ...]) -> bool:
        """Whether a call on images of `shape` (N, 3, H, W) runs the compiled network.

        Not where each image's full-size activation reaches glibc's mmap ceiling (32 MiB: about half
        a megapixel in bf16) on a CPU whose process returns freed memory to the system in 4 KB
        pages (the C library's default; `hardware.keep_freed_memory` and `THP_MEM_ALLOC_ENABLE`
        change it). There Inductor's fresh buffers are new mappings every frame, whose pages the
        kernel faults in and zeroes, while the eager path keeps its largest activations between
        frames (`stylenet.networks.frame_buffers`); measured in docs/performance.md ("Compiled
        frames above the mmap ceiling"). Other C libraries: not measured, so compiled.

        An int8 runner's graph runs at every size: the eager path would be bf16, whose convolutions
        cost more than the graph's page faults (an int8 1080p frame 1.24x faster than the eager
        bf16 one without memory reuse on an AMD EPYC with AVX512-VNNI; docs/performance.md).
        """
        if self._compiled is None:
            return False
        if self.int8:
            return True
        if not self.eager_for_fresh_pages or self.device.type != "cpu" or not hardware.uses_glibc():
            return True
        if hardware.keeping_freed_memory() or hardware.asks_for_huge_pages():
            return True
        channels = getattr(self.module, "channels", None)
        if channels is None:  # not a TransformerNet: nothing known of its activations
            return True
        return channels[0] * math.prod(shape[-2:]) * self.dtype.itemsize < KEEP_BYTES  # the full-size one

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # One copy for the dtype and the layout together, not one for each.
        x = images.to(device=self.device, dtype=self.dtype, memory_format=self.layout)
        if self.compiles(tuple(x.shape)):
            try:
                return self._compiled(x)
            except Exception as error:  # Inductor fails in many ways (toolchain, platform); eager always works
                reason = (str(error).strip().splitlines() or [error.__class__.__name__])[0][:200]
                print(f"warning: torch.compile failed, running uncompiled ({reason})", file=sys.stderr)
                self._compiled = None
        if len(x) > 1 and self.device.type == "cpu" and x.shape[-2] * x.shape[-1] >= SPLIT_PIXELS:
            return torch.cat([self.module(image) for image in x.split(1)])
        return self.module(x)
