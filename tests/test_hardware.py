"""precision=auto picks bf16 only where the hardware runs it natively, with the device queries patched."""

from __future__ import annotations

import pytest
import torch

from stylenet import hardware
from stylenet.hardware import native_precision, resolve_precision

# (name, compute capability): is_bf16_supported() says yes on all of them, emulated on the first two.
GPUS = [("V100", (7, 0), "fp16"), ("T4", (7, 5), "fp16"), ("A100", (8, 0), "bf16"), ("H100", (9, 0), "bf16")]


def _pretend_gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.mark.parametrize(("name", "capability", "expected"), GPUS, ids=[g[0] for g in GPUS])
def test_auto_precision_on_gpus_is_bf16_only_where_native(
    monkeypatch: pytest.MonkeyPatch, name: str, capability: tuple[int, int], expected: str
) -> None:
    _pretend_gpu(monkeypatch, capability)
    assert native_precision("cuda") == expected
    lightning = {"bf16": "bf16-mixed", "fp16": "16-mixed"}[expected]
    assert resolve_precision("auto", "gpu") == lightning
    assert resolve_precision("auto", "auto") == lightning
    assert resolve_precision("32-true", "gpu") == "32-true"  # an explicit choice is left alone


def test_no_gpu_means_no_bf16_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_precision("cuda") == "fp16"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx2 avx512f", "fp32"),
        ("fpu avx512f avx512_bf16", "bf16"),
        ("fpu amx_tile amx_bf16", "bf16"),
        ("", "fp32"),  # no /proc/cpuinfo: fp32 is always correct
    ],
)
def test_auto_precision_on_cpus_follows_the_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, flags: str, expected: str
) -> None:
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: flags.split())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_precision("cpu") == expected
    assert resolve_precision("auto", "auto") == {"bf16": "bf16-mixed", "fp32": "32-true"}[expected]


@pytest.mark.parametrize(("value", "asks"), [(None, False), ("1", True), ("true", False), ("0", False), ("", False)])
def test_huge_pages_are_read_from_the_variable_pytorch_reads(monkeypatch, value, asks) -> None:
    if value is None:
        monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    else:
        monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", value)
    assert hardware.asks_for_huge_pages() is asks
