"""A fresh process per measurement, and the peak memory each one reached.

ru_maxrss and VmHWM cannot be reset portably, so a per-process peak is the only honest peak;
and process-wide settings a measurement asks for (the allocator's memory reuse) end with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHILD_TIMEOUT_S = 1800


def rss_mb() -> float:
    """Peak resident memory of this process, MB.

    VmHWM rather than ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would
    report its parent's peak; VmHWM belongs to the child's own address space.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS where Linux allows it (in-process mode only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_in_subprocess(spec: dict[str, Any], workdir: Path, timeout_s: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """`stylenet.benchmark.measure` of `spec` in a fresh interpreter; failures become skipped rows."""
    out = workdir / f"result-{time.monotonic_ns()}.json"
    root = str(Path(__file__).resolve().parents[2])  # makes `stylenet` importable from a source tree
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "stylenet.benchmark.measure", "--one", json.dumps(spec), "--out", str(out)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"did not finish within {timeout_s:g} s"}
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "skipped", "reason": f"measuring process exited with code {done.returncode}: {last}"}
    return json.loads(out.read_text())
