"""What the machine runs fast: the default precision, speed options, and memory reuse."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

import torch

from stylenet.errors import ConfigError

# CPU flags (Linux /proc/cpuinfo names) under which oneDNN runs bf16 convolutions natively.
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


# NVIDIA GPUs run bf16 in hardware from Ampere (compute capability 8.0) on.
_BF16_CUDA_CAPABILITY = (8, 0)


def _cpu_flags() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: be conservative, fp32 is always correct
        return []


def cpu_has_native_bf16() -> bool:
    return any(flag in _cpu_flags() for flag in _BF16_CPU_FLAGS)


def cuda_has_native_bf16() -> bool:
    """Whether the current GPU runs bf16 in hardware.

    Not `torch.cuda.is_bf16_supported()` alone: it also says yes where bf16 is only emulated
    (V100, T4), which runs slower than fp16 there.
    """
    if not torch.cuda.is_available():
        return False
    if torch.version.hip:  # ROCm reports no NVIDIA capability; trust its own answer
        return torch.cuda.is_bf16_supported()
    return torch.cuda.get_device_capability() >= _BF16_CUDA_CAPABILITY


def native_precision(device_type: str) -> str:
    """bf16 where the hardware runs it natively (AMX/AVX512-BF16 CPUs, Ampere+ GPUs); else fp16 on
    GPUs and fp32 on CPUs. Training (`resolve_precision`) and inference share this choice."""
    if device_type == "cuda":
        return "bf16" if cuda_has_native_bf16() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


_LIGHTNING_PRECISION = {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """Lightning's precision for `precision`; ``auto`` means bf16-mixed where bf16 is native."""
    if str(precision) != "auto":
        return precision
    uses_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return _LIGHTNING_PRECISION[native_precision("cuda" if uses_gpu else "cpu")]


def resolve_speed(channels_last: str | bool, compile: str | bool, precision: str | int) -> tuple[bool, bool]:
    """(channels_last, compile) for training; ``auto`` turns both on with half-precision training.

    Measured with `stylenet benchmark` on a CPU with AMX: channels-last is slower than NCHW in
    fp32 but faster in bf16, and together with compiling (and the fast layers either turns on)
    it took a 256 px step from about 1800 to 820 ms, which pays back the minute of compilation
    within a few hundred steps. At 128 px compiling barely helps: the quickstart turns it off.
    """
    half = str(precision) in ("bf16-mixed", "16-mixed", "bf16-true", "16-true")

    def pick(value: str | bool, name: str) -> bool:
        if isinstance(value, bool):
            return value
        if str(value) == "auto":
            return half
        raise ConfigError(f"{name} must be auto, true or false, not {value!r}")

    return pick(channels_last, "channels_last"), pick(compile, "compile")


def wants_memory_reuse(setting: str | bool, repeated_work: bool) -> bool:
    """`memory_reuse` (auto, on or off; YAML reads bare on/off as booleans): whether to `keep_freed_memory`.

    auto: on for repeated work only, where reusing freed memory saves time on every repetition.
    """
    choice = ("on" if setting else "off") if isinstance(setting, bool) else str(setting)
    if choice not in ("auto", "on", "off"):
        raise ConfigError(f"memory_reuse must be auto, on or off, not {setting!r}")
    return repeated_work if choice == "auto" else choice == "on"


@functools.cache  # asked on every compiled call; the C library does not change
def uses_glibc() -> bool:
    """Whether this process's C library is glibc, whose allocator maps blocks over 32 MiB afresh."""
    return sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def asks_for_huge_pages() -> bool:
    """Whether PyTorch's CPU allocator asks for 2 MB pages for large blocks: `THP_MEM_ALLOC_ENABLE=1`
    in the environment the process started with (PyTorch reads it once, at its first allocation, and
    takes 0 or 1 only: other values are ignored with a warning)."""
    return os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_keeping_freed_memory = False


def keeping_freed_memory() -> bool:
    """Whether `keep_freed_memory` is in force in this process."""
    return _keeping_freed_memory


def keep_freed_memory(enabled: bool = True) -> bool:
    """Makes this process reuse the memory of freed tensors instead of returning it to the OS.

    glibc serves every allocation over 32 MB (a 1080p activation is 66-266 MB) with a fresh mmap
    and unmaps it on free, so each layer's output pays the kernel's page faults and zeroing
    again. Measured on a 2-core Intel Xeon with AMX: copying a 133 MB tensor took 40 ms, 16 ms
    with this; a compiled bf16 1080p frame 1180 ms, 807 ms. The price is memory: freed blocks
    stay resident, and fragment, so the peak is higher (docs/performance.md, Memory). Hence it is for
    repeated work (training, video, folders, benchmarks), not one image. `enabled=False`
    undoes an earlier call with glibc's default values; a process that never enabled it is left
    untouched (any mallopt call would switch off glibc's dynamic mmap threshold). Returns False
    where the C library is not glibc.
    """
    global _keeping_freed_memory
    if sys.platform != "linux":
        return False
    if not enabled and not _keeping_freed_memory:
        return True  # glibc's own defaults are in force
    mmap_max, trim_threshold = (0, 2**31 - 1) if enabled else (65536, 128 * 1024)
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = bool(libc.mallopt(_M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    _keeping_freed_memory = enabled and done
    return done
