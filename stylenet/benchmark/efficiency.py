"""Each row's effective GFLOPS and its percentage of this machine's peak in the row's precision.

Effective: the FLOPs of the network as defined (`stylenet.benchmark.flops`) over the row's
time, whatever arithmetic the row's path really did, so a path that does less (sub-pixel
upsampling) reads higher. The peak is the 3x3 convolution's (`stylenet.benchmark.peak`): the
network is almost all 3x3 convolutions, and a matrix product's peak is out of their reach.
"""

from __future__ import annotations

from typing import Any

from stylenet.benchmark.backends import REFERENCE, STYLIZER_PREFIX
from stylenet.benchmark.training import REFERENCE as TRAIN_REFERENCE
from stylenet.benchmark.training import TRAIN_VARIANTS

PRECISIONS = ("fp32", "bf16", "fp16", "int8")  # no int8 peak is measured: int8 rows get no % of peak


def inference_precision(backend: str, stylizer_precision: str) -> str:
    """The precision an inference row computes in: its suffix; fp32 for channels-last and exported models;
    the default precision of `load_model` (`stylizer_precision`) for the multi-style rows."""
    if backend.startswith(STYLIZER_PREFIX):
        return stylizer_precision
    suffix = backend.rpartition("-")[2]
    return suffix if suffix in PRECISIONS else "fp32"


def training_precision(variant: str) -> str:
    return "fp32" if variant == TRAIN_REFERENCE else TRAIN_VARIANTS[variant][0]


def with_efficiency(row: dict[str, Any], flops: int, precision: str, peak: dict[str, float]) -> dict[str, Any]:
    """`row` with `effective_gflops` (`flops` per frame or step over its time) and `percent_of_peak` against
    the 3x3 convolution peak in `precision`, where it was measured and the row was not skipped."""
    ms = row.get("ms_per_frame", row.get("ms_per_step"))
    if row.get("status") != "ok" or not ms:
        return row
    row["precision"] = precision
    row["effective_gflops"] = flops / (ms / 1000) / 1e9
    if peak.get(f"conv3x3_{precision}_gflops"):
        row["percent_of_peak"] = 100 * row["effective_gflops"] / peak[f"conv3x3_{precision}_gflops"]
    if row.get("beside_peak_gflops"):  # the same convolution timed between the row's own calls
        row["percent_of_beside_peak"] = 100 * row["effective_gflops"] / row["beside_peak_gflops"]
    return row


def add_efficiency(result: dict[str, Any], weights_config: dict[str, Any], stylizer_precision: str) -> None:
    """Adds effective GFLOPS and % of peak to every measured row of `result`, and the note that defines them.

    `weights_config` is the benchmarked network's `TransformerConfig` (as a dict); each size and
    each training step is counted once.
    """
    from stylenet.benchmark.flops import frame_flops, training_step_flops

    peak = {k: v for k, v in result.get("peak", {}).items() if k.endswith("_gflops")}
    frames: dict[tuple[str, bool], int] = {}
    for row in result["inference"]:
        reference = row["backend"] == REFERENCE
        if (row["size"], reference) not in frames:
            width, height = (int(v) for v in row["size"].split("x"))
            frames[row["size"], reference] = frame_flops(None if reference else weights_config, height, width)
        precision = inference_precision(row["backend"], stylizer_precision)
        with_efficiency(row, frames[row["size"], reference], precision, peak)
    steps: dict[str, int] = {}
    settings = result["settings"]
    for row in result["training"]:
        counted = TRAIN_REFERENCE if row["backend"] == TRAIN_REFERENCE else "project"
        if counted not in steps:
            steps[counted] = training_step_flops(row["backend"], settings["train_batch"], settings["train_size"])
        with_efficiency(row, steps[counted], training_precision(row["backend"]), peak)
    result["flops"] = {
        "frame": {f"{size}{' reference' if ref else ''}": n for (size, ref), n in frames.items()},
        "training_step": steps,
    }
    result["efficiency_note"] = (
        "GFLOPS: effective, the FLOPs of the network as defined (2 x the multiply-adds of its convolutions and "
        "matrix products in the plain eager network, counted by torch.utils.flop_counter; a training step: the "
        "transformer's forward and backward plus VGG's forward and backward as the step runs) over the row's time; "
        "reference rows count the reference network; paths that run stylenet.networks.fast_ops (fast-*, "
        "compile-*, cudagraph-*, training steps with channels-last or compile) do less arithmetic (sub-pixel "
        "upsampling) and so read higher. % of peak: of this machine's 3x3-convolution peak in "
        "the row's precision, measured in this run: fp32 rows against conv3x3 fp32, bf16 rows (inference and "
        "training) against conv3x3 bf16, fp16 rows against conv3x3 fp16. % of peak beside: against the same "
        "convolution timed after each of the row's own timed calls, in its process (median rate): the peak of the "
        "minutes the row ran in, where the machine's rate moves (shared cores)"
    )
