"""`stylenet benchmark`: inference and training speed against the PyTorch example's network.

One module per idea: `run` (the command line), `checks` (what a request is refused for before any
work), `suite` (which measurements, and their ratios), `measure` (one measurement; also the entry
point of the measuring process), `isolate` (a fresh process per measurement, and its peak memory),
`backends` (the inference paths), `styles` (a single-style model against the same network holding
several styles), `training` (the training steps), `reference` (the yardstick), `peak` (this
machine's own peak GFLOPS), `flops` (the FLOPs of a frame and of a training step), `efficiency`
(each row's GFLOPS and % of peak), `machine` (what the figures were measured on) and `report`
(tables for the terminal and for docs/).
"""

from stylenet.errors import StylenetError


class BenchmarkError(StylenetError):
    """A benchmark request that cannot be run (unknown backend, malformed size)."""
