"""The `stylenet` command: `export` models and `stylize` images, folders, video and webcam."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from stylenet.benchmark.run import add_parser as add_benchmark_parser
from stylenet.benchmark.run import run as run_benchmark
from stylenet.errors import StylenetError

IMAGE_OUTPUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Compiling costs ~20 s once on a 2-core CPU and saves ~0.1 s per 512 px image: worth it from here.
COMPILE_MIN_IMAGES = 32


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylenet", description="Run, export, evaluate and benchmark feed-forward style transfer models."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="export a checkpoint as a single-pass ONNX or torch.export model")
    export.add_argument("checkpoint", type=Path, help="a .pt inference checkpoint or a Lightning .ckpt")
    export.add_argument("--format", default="all", choices=["onnx", "pt2", "all"])
    export.add_argument("-o", "--output", type=Path, default=None, help="file or folder (default: beside the input)")

    stylize = commands.add_parser("stylize", help="stylise images, folders or videos")
    stylize.add_argument("model", type=Path, help="a .pt, .ckpt, .onnx or .pt2 model")
    stylize.add_argument("inputs", nargs="*", type=Path, help="image files, folders (recursive) or video files")
    stylize.add_argument("-o", "--output", type=Path, default=Path("stylised"), help="output folder, or a file name")
    size = stylize.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, help="resize so that the longest side is N pixels")
    size.add_argument("--scale", type=float, help="resize by this factor")
    stylize.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    stylize.add_argument("--strength", type=float, default=1.0, help="0 gives the content, 1 the full style")
    stylize.add_argument("--tile", type=int, help="process in overlapping N x N tiles (bounded memory)")
    stylize.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    stylize.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16 where the CPU/GPU runs it natively (.pt/.ckpt), else fp32",
    )
    stylize.add_argument(
        "--compile",
        default="auto",
        choices=["auto", "on", "off"],
        help=f"torch.compile the network: slow once, then faster; auto: for videos, webcam, --benchmark "
        f"and {COMPILE_MIN_IMAGES}+ images",
    )
    stylize.add_argument(
        "--memory-reuse",
        default="auto",
        choices=["auto", "on", "off"],
        help="keep freed memory for later frames: faster, but a higher peak; auto: as --compile auto",
    )
    stylize.add_argument("--batch-size", type=int, default=4, help="images (of equal size) or frames per batch")
    stylize.add_argument("--benchmark", action="store_true", help="time the model on synthetic frames and exit")
    stylize.add_argument("--webcam", type=int, metavar="N", help="stylise camera N live (needs opencv-python)")

    _add_evaluate_parser(commands)
    add_benchmark_parser(commands)
    return parser


def _add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """`evaluate` is declared here so that parsing arguments never imports the loss network."""
    parser = subparsers.add_parser(
        "evaluate", help="compare a model with per-image optimisation (Gatys et al. 2016) on loss, time and SSIM"
    )
    parser.add_argument("model", type=Path, help="a .pt, .ckpt, .onnx or .pt2 model")
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos (recursive)")
    parser.add_argument("--style", help="style name from configs/style/ or an image path (default: the model's)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="report folder (default: evaluation/MODEL)")
    parser.add_argument("--gatys-steps", type=int, default=300, help="optimisation steps per photo")
    parser.add_argument("--size", type=int, default=256, help="photos are centre-cropped to N x N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vgg-weights", help="override the loss network: caffe, torchvision, random or a path")
    parser.add_argument("--method", default="lbfgs", choices=["lbfgs", "adam"], help="optimiser for the reference")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            return _export(args)
        if args.command == "evaluate":
            from stylenet.evaluate import run as run_evaluate
            from stylenet.hardware import keep_freed_memory

            keep_freed_memory()  # the reference optimisation repeats one step hundreds of times
            return run_evaluate(args)
        if args.command == "benchmark":
            return run_benchmark(args)
        return _stylize(args)
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    from stylenet.inference.export import FORMATS, export
    from stylenet.inference.model import load_network

    network, metadata = load_network(args.checkpoint)
    out = args.output or args.checkpoint.parent
    formats = FORMATS if args.format == "all" else (args.format,)
    if len(formats) > 1 and out.suffix:
        out = out.parent  # one file name cannot hold two formats
    for fmt in formats:
        target = out if out.suffix else out / f"{args.checkpoint.stem}.{fmt}"
        print(f"wrote {export(network, metadata, target, fmt)}")
    return 0


def speed_choices(args: argparse.Namespace, n_images: int, has_videos: bool) -> tuple[bool, bool]:
    """(compile, memory reuse) for a `stylize` run; ``auto`` turns both on for repeated work.

    Both pay off only over many frames: compiling costs about a minute, and kept memory (later
    frames reuse the memory of earlier ones) raises the peak (README, memory table), while a
    single image's memory is new anyway.
    """
    repeated = has_videos or args.webcam is not None or args.benchmark or n_images >= COMPILE_MIN_IMAGES

    def pick(value: str) -> bool:
        return repeated if value == "auto" else value == "on"

    return pick(args.compile), pick(args.memory_reuse)


def _stylize(args: argparse.Namespace) -> int:
    from stylenet.hardware import keep_freed_memory
    from stylenet.inference.model import load_model
    from stylenet.inference.runner import Settings, plan_outputs, run_images, run_video

    if not 0.0 <= args.strength <= 1.0:
        raise StylenetError(f"--strength must be between 0 and 1, not {args.strength}")
    if args.batch_size < 1:
        raise StylenetError("--batch-size must be at least 1")
    images, videos, missing = plan_outputs(args.inputs, args.output) if args.inputs else ([], [], [])
    compile, reuse = speed_choices(args, len(images), bool(videos))
    if reuse:
        keep_freed_memory()
    stylizer = load_model(args.model, device=args.device, precision=args.precision, compile=compile)
    if stylizer.backend == "compiled":
        print("note: compiling the network on its first batch (tens of seconds, cached on disk)", file=sys.stderr)
    settings = Settings(args.size, args.scale, args.preserve_color, args.strength, args.tile, args.batch_size)
    if args.tile and stylizer.network is None:
        print(
            f"note: --tile with a {stylizer.backend} model normalises each tile on its own, which can shift tones "
            "between tiles; a .pt or .ckpt model uses whole-image statistics",
            file=sys.stderr,
        )
    if args.benchmark:
        return _benchmark(stylizer, args.size or 512, args.batch_size)
    if args.webcam is not None:
        from stylenet.inference.webcam import run_webcam

        return run_webcam(stylizer, args.webcam, settings)
    if not args.inputs:
        raise StylenetError("give at least one image, folder or video (or --benchmark, --webcam N)")
    failures = len(missing)
    for path in missing:
        print(f"skipped {path}: no such file or folder", file=sys.stderr)
    started = time.perf_counter()
    done, failed = run_images(stylizer, images, settings) if images else (0, 0)
    failures += failed
    frames = 0
    for job in videos:
        frames += run_video(stylizer, job, settings)
    elapsed = time.perf_counter() - started
    parts = []
    if images:
        parts.append(f"{done} image(s) written, {failures} failed, {done / elapsed:.2f} images/s")
    if videos:
        parts.append(f"{frames} frame(s) in {len(videos)} video(s), {frames / elapsed:.2f} frames/s")
    print("; ".join(parts) or f"nothing written, {failures} failed")
    return 1 if failures else 0


def _benchmark(stylizer, size: int, batch_size: int, repeats: int = 10) -> int:
    import torch

    frames = torch.rand(batch_size, 3, size, size)
    stylizer(frames)  # warm-up: allocations, oneDNN kernel selection, CUDA context
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        stylizer(frames)
        if stylizer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / batch_size)
    median = statistics.median(times)
    print(
        f"{size}x{size}, batch {batch_size}, {stylizer.backend} {stylizer.precision} on {stylizer.device}: "
        f"median {median * 1000:.1f} ms/frame, {1 / median:.2f} frames/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
