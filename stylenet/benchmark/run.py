"""`stylenet benchmark`: inference speed per backend and size, training speed, peak memory.

Every figure is also given as a ratio against `stylenet.benchmark.reference` (the classic
PyTorch example's network and training step, eager fp32), measured in the same run, so that
numbers from different machines can be compared by their ratios, and as a percentage of this
machine's own peak (`stylenet.benchmark.peak`), measured in the same run too. Nothing here
asserts a timing; it only reports. This module is the command line; `suite` runs the measurements.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from stylenet.atomic_write import replacing
from stylenet.benchmark import BenchmarkError
from stylenet.benchmark.backends import BACKENDS
from stylenet.benchmark.checks import check_outputs
from stylenet.benchmark.isolate import CHILD_TIMEOUT_S
from stylenet.benchmark.report import format_markdown, format_report
from stylenet.benchmark.suite import MEMORY_REUSE, Size, run_benchmark
from stylenet.errors import StylenetError

DEFAULT_SIZES = "256,512,1024,1920x1080"


def parse_sizes(text: str) -> list[Size]:
    """ "256,1920x1080" -> [(256, 256), (1920, 1080)] (width, height)."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            width, height = (int(v) for v in item.split("x")) if "x" in item else (int(item), int(item))
        except ValueError:
            raise BenchmarkError(f"--sizes: {item!r} is not N or WxH (e.g. 256 or 1920x1080)") from None
        if min(width, height) < 8:
            raise BenchmarkError(f"--sizes: {item!r} is below the network's 8x8 minimum")
        sizes.append((width, height))
    return sizes


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the `benchmark` subcommand to the `stylenet` command's subparsers."""
    parser = subparsers.add_parser(
        "benchmark", help="time inference per backend and size, and training, against the reference network"
    )
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"N or WxH, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--backends", default="all", help=f"comma-separated: {', '.join(BACKENDS)} or all (default all)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (median reported)")
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip the training measurements")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps (after one warm-up)")
    parser.add_argument("--train-size", type=int, default=256, help="training image size in pixels (default 256)")
    parser.add_argument("--train-batch", type=int, default=4, help="training batch size (default 4)")
    parser.add_argument(
        "--model", type=Path, default=None, help="a .pt or .ckpt model, or a shipped style's name (default: starry)"
    )
    parser.add_argument(
        "--memory-reuse",
        choices=MEMORY_REUSE,
        default=None,
        help="allocator setting of the measuring processes, for reference and stylenet rows alike: keep freed "
        "memory for reuse (on), the C library's defaults (off), or each measurement under both (default both; "
        "off with --in-process)",
    )
    parser.add_argument(
        "--styles",
        type=int,
        default=None,
        metavar="N",
        help="also time the model as `stylenet stylize` runs it, as a single-style model and as the same network "
        "holding N styles (one chosen, and a blend of all), with ratios against the single-style model; a model of "
        "several styles is used as it is (N must be its count) (default: not measured)",
    )
    parser.add_argument(
        "--no-peak",
        dest="peak",
        action="store_false",
        help="skip this machine's peak (a large 3x3 convolution and matrix product per precision, a few seconds) "
        "and with it the GFLOPS and %% of peak columns",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the full result as JSON")
    parser.add_argument("--markdown", type=Path, default=None, metavar="OUT", help="write the tables as Markdown")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --json and --markdown files that exist already"
    )
    parser.add_argument(
        "--in-process", dest="isolate", action="store_false", help="faster, but peak RSS is process-wide"
    )
    parser.add_argument(
        "--child-timeout", type=float, default=CHILD_TIMEOUT_S, help="seconds before one measurement is skipped"
    )
    return parser


def _command(args: argparse.Namespace) -> str:
    """The command line that measures what `args` asks for (outputs left out), for the Markdown."""
    argv = ["stylenet", "benchmark", "--sizes", args.sizes, "--backends", args.backends]
    argv += ["--repeats", str(args.repeats)]
    if args.train:
        argv += ["--train-steps", str(args.train_steps), "--train-size", str(args.train_size)]
        argv += ["--train-batch", str(args.train_batch)]
    else:
        argv.append("--no-train")
    argv += ["--model", str(args.model)] if args.model else []
    argv += ["--memory-reuse", args.memory_reuse] if args.memory_reuse else []
    argv += ["--styles", str(args.styles)] if args.styles is not None else []
    argv += [] if args.peak else ["--no-peak"]
    argv += [] if args.isolate else ["--in-process"]
    return shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    """Runs `stylenet benchmark` with parsed `args`; prints the table, optionally writes JSON and Markdown.

    Returns 2 for a request refused before any measurement; 1 where every measurement was skipped or a file
    could not be written."""
    outputs = {"--json": args.json, "--markdown": args.markdown}
    try:
        check_outputs(outputs, args.overwrite)  # found now, not after minutes of measuring
        result = run_benchmark(
            parse_sizes(args.sizes),
            [b.strip() for b in args.backends.split(",") if b.strip()],
            args.repeats,
            args.train,
            args.train_steps,
            str(args.model) if args.model else None,
            train_size=args.train_size,
            train_batch=args.train_batch,
            isolate=args.isolate,
            child_timeout_s=args.child_timeout,
            memory_reuse=args.memory_reuse,
            styles=args.styles,
            peak=args.peak,
        )
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(result))
    rows = result["inference"] + result["training"]
    if not any(row.get("status") == "ok" for row in rows):
        # Files of skipped rows only would replace earlier figures (--overwrite) with none.
        unwritten = "; no file written" if args.json or args.markdown else ""
        print(f"error: nothing measured: every row was skipped (reasons above){unwritten}", file=sys.stderr)
        return 1
    written = [_write("--json", args.json, json.dumps(result, indent=2))] if args.json else []
    written += [_write("--markdown", args.markdown, format_markdown(result, _command(args)))] if args.markdown else []
    return 0 if all(written) else 1


def _write(option: str, path: Path, text: str) -> bool:
    """Writes `text` to `path` whole or not at all; False, after a line saying why, where it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as partial:  # a failed write keeps the file it would have replaced
            partial.write_text(text)
    except OSError as error:
        print(f"error: {option} {path}: cannot write ({error.strerror or error})", file=sys.stderr)
        return False
    print(f"wrote {path}")
    return True
