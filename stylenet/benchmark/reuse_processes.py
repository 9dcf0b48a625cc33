"""Plumbing of the scripts that time two paths call by call, in one process per memory-reuse setting.

Memory reuse (`stylenet.hardware.keep_freed_memory`) is a setting of the whole process, so each
setting gets a fresh child: the script runs itself with `--child off` or `--child on`, and the child
prints its result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

SETTINGS = ("off", "on")


def heights_widths(text: str) -> list[tuple[int, int]]:
    """(H, W) of each size in "WxH,WxH,..." (or "N" for NxN), read as `stylenet benchmark --sizes` reads them."""
    from stylenet.benchmark.run import parse_sizes

    return [(height, width) for width, height in parse_sizes(text)]


def arguments(
    description: str, sizes: str, repeats: int, precisions: tuple[str, ...] | None = None
) -> argparse.Namespace:
    """Such a script's command line: --model, --sizes, --repeats, --precision (one of `precisions`, the first
    by default; only where given), and the hidden --child."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="starry")
    parser.add_argument("--sizes", default=sizes, help="WxH, comma-separated")
    parser.add_argument("--repeats", type=int, default=repeats)
    if precisions:
        parser.add_argument("--precision", choices=precisions, default=precisions[0])
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)  # memory reuse of this process
    return parser.parse_args()


def answered_as_child(args: argparse.Namespace, child: Callable[[str, bool, list[tuple[int, int]], int], Any]) -> bool:
    """In a child, prints `child(model, memory reuse, sizes, repeats)` as one JSON line and returns True."""
    if not args.child:
        return False
    print(json.dumps(child(args.model, args.child == "on", heights_widths(args.sizes), args.repeats)))
    return True


def child_options(args: argparse.Namespace) -> list[str]:
    precision = ["--precision", args.precision] if getattr(args, "precision", None) else []
    return ["--model", args.model, "--sizes", args.sizes, "--repeats", str(args.repeats), *precision]


def print_machine() -> None:
    """The machine the figures come from, then a blank line."""
    from stylenet.benchmark.machine import machine_info
    from stylenet.benchmark.report import machine_lines

    print("\n".join(machine_lines(machine_info())))
    print()


def child_results(script: str, options: list[str]) -> Iterator[tuple[str, Any]]:
    """(setting, what `script --child setting` printed as JSON on its last line), for each setting in turn."""
    for reuse in SETTINGS:
        command = [sys.executable, script, *options, "--child", reuse]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        yield reuse, json.loads(done.stdout.splitlines()[-1])
