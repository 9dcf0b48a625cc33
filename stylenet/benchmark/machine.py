"""What the figures were measured on: CPU, its relevant flags, GPU and library versions."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni")


def machine_info() -> dict[str, Any]:
    """CPU model, core and thread counts, relevant CPU flags, GPU name; printed and saved with results."""
    import torch

    from stylenet.hardware import cpu_has_native_bf16

    model, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):  # not Linux: keep the fallbacks
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu_model": model,
        "os_cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "native_bf16": cpu_has_native_bf16(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "platform": platform.platform(),
    }


def device():
    """The device every measurement runs on: the first GPU where there is one."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(on) -> None:
    """Waits for the device's queued work, so that a wall-clock time covers it."""
    import torch

    if on.type == "cuda":
        torch.cuda.synchronize()
