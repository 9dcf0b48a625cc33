"""`stylenet stylize`: images, folders, videos and the webcam through a loaded model, or its speed measured."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

from stylenet.errors import StylenetError
from stylenet.inference.tiling import MIN_TILE

# Compiling costs ~20 s once on a 2-core CPU and saves ~0.1 s per 512 px image: worth it from here.
COMPILE_MIN_IMAGES = 32


def speed_choices(args: argparse.Namespace, n_images: int, has_videos: bool) -> tuple[bool, bool]:
    """(compile, memory reuse) for a `stylize` run; ``auto`` turns both on for repeated work.

    Both pay off only over many frames: compiling costs about a minute, and kept memory (later
    frames reuse the memory of earlier ones) raises the peak (docs/performance.md, Memory), while a
    single image's memory is new anyway.
    """
    repeated = has_videos or args.webcam is not None or args.benchmark or n_images >= COMPILE_MIN_IMAGES

    from stylenet.hardware import wants_memory_reuse

    # int8 runs only in the compiled graph (at every size, FastRunner.compiles): auto compiles for it even
    # for one image, whose memory is new anyway, so memory reuse stays for repeated work.
    int8 = getattr(args, "precision", None) == "int8"
    compile = (repeated or int8) if args.compile == "auto" else args.compile == "on"
    return compile, wants_memory_reuse(args.memory_reuse, repeated)


def _check_stylize_args(args: argparse.Namespace) -> int | None:
    """Every value checked before a model or an image is loaded; returns --max-memory in bytes."""
    from stylenet.inference.model import resolve_device

    resolve_device(args.device, "--device ")  # named as typed here; load_model's own check speaks of device=
    if args.size is not None and args.size < 8:
        raise StylenetError(f"--size must be at least 8 (pixels on the longest side), not {args.size}")
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
        raise StylenetError(f"--scale must be a positive factor, not {args.scale}")
    if args.tile is not None and args.tile < MIN_TILE:
        raise StylenetError(f"--tile must be at least {MIN_TILE} px, not {args.tile}")
    if not 0.0 <= args.strength <= 1.0:
        raise StylenetError(f"--strength must be between 0 and 1, not {args.strength}")
    if args.batch_size < 1:
        raise StylenetError("--batch-size must be at least 1")
    if args.webcam is not None and args.webcam < 0:  # OpenCV's -1 ("any camera") crashes some builds outright
        raise StylenetError(f"--webcam takes a camera number, 0 for the first, not {args.webcam}")
    if args.webcam is not None and args.benchmark:  # --benchmark would run and the camera never open
        raise StylenetError("--webcam and --benchmark are two different runs: give one of them")
    if not (args.inputs or args.benchmark or args.webcam is not None):
        raise StylenetError("give at least one image, folder or video (or --benchmark, --webcam N)")
    return max_memory_bytes(args.max_memory)


def max_memory_bytes(text: str | None) -> int | None:
    """--max-memory in bytes (None where not given), for `stylize` and `app` alike."""
    from stylenet.inference.memory import parse_size

    if text is None:
        return None
    try:
        max_memory = parse_size(text)
    except ValueError as error:
        raise StylenetError(f"--max-memory: {error}") from None
    if max_memory <= 0:
        raise StylenetError(f"--max-memory must be more than zero, not {text}")
    return max_memory


def run(args: argparse.Namespace) -> int:
    from stylenet.hardware import keep_freed_memory
    from stylenet.inference.model import load_model
    from stylenet.inference.runner import Settings, plan_jobs, run_images, run_video
    from stylenet.pretrained import resolve

    max_memory = _check_stylize_args(args)
    camera = None
    if args.webcam is not None:
        from stylenet.inference.webcam import open_camera

        camera = open_camera(args.webcam)  # no camera is one line before the model loads and compiles
    images, videos, skipped = (
        plan_jobs(args.inputs, args.output, args.overwrite, args.output_is_folder) if args.inputs else ([], [], [])
    )
    compile, reuse = speed_choices(args, len(images), bool(videos))
    if reuse:
        keep_freed_memory()
    resolved = resolve(args.model, args.style)  # a shipped style's name is its choice: checked against --style
    stylizer = _choose_style(
        load_model(resolved.path, device=args.device, precision=args.precision, compile=compile),
        resolved.style,
        "--style" if args.style is not None else str(args.model),  # errors name what the user typed
    )
    if max_memory is None and stylizer.device.type == "cpu":
        from stylenet.inference.memory import memory_limit

        # Read once, now: with memory reuse the heap keeps what earlier images freed, which the
        # kernel's free count would no longer show, and later images would be tiled for nothing.
        max_memory = memory_limit(None, "cpu")
    stylizer.max_memory = max_memory
    if stylizer.backend == "compiled":
        # Not for images the compiled graph would be slower on (FastRunner.compiles): those run uncompiled.
        print(
            "note: compiling the network on its first batch that gains from it (tens of seconds, cached on disk)",
            file=sys.stderr,
        )
    settings = Settings(
        args.size, args.scale, args.preserve_color, args.strength, args.tile, args.batch_size, max_memory
    )
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

        return run_webcam(stylizer, camera, settings)
    for line in skipped:
        print(line, file=sys.stderr)
    failures = len(skipped)
    started = time.perf_counter()
    done, failed = run_images(stylizer, images, settings) if images else (0, 0)
    failures += failed
    frames = written_videos = 0
    for job in videos:
        try:
            frames += run_video(stylizer, job, settings)
            written_videos += 1
        except StylenetError as error:  # one bad video must not stop the others
            print(f"skipped {error}", file=sys.stderr)
            failures += 1
    elapsed = time.perf_counter() - started
    print(_summary(done, written_videos, frames, failures, elapsed, args.output, images + videos))
    return 1 if failures or not (done or written_videos) else 0


def _choose_style(stylizer, choice: str | None, label: str = "--style"):
    """The stylizer bound to `choice`, resolved once before any image is read; every error starts with `label`
    (the option or argument the choice came from) and names the styles."""
    from stylenet.errors import ConfigError

    if choice is None:
        if len(stylizer.styles) > 1:
            blend = f"{stylizer.styles[0]}=0.7,{stylizer.styles[1]}=0.3"
            print(
                f"note: this model holds {len(stylizer.styles)} styles ({', '.join(stylizer.styles)}); running "
                f"{stylizer.style}. Choose with --style NAME or a blend such as --style {blend}",
                file=sys.stderr,
            )
        return stylizer
    try:
        return stylizer.with_style(choice)
    except ConfigError as error:
        reason = str(error).removeprefix(f"style {choice!r}: ")  # the label says which choice
        message = f"{label} {choice}: {reason}" if label == "--style" else f"{label}: {reason}"
        held = ", ".join(stylizer.styles)
        if held and held not in message:  # weights that are wrong, not names: still say what the model holds
            message += f" (this model holds {held})"
        raise ConfigError(message) from None


def _summary(images: int, videos: int, frames: int, failures: int, elapsed: float, output: Path, jobs) -> str:
    """The closing line: what was written, where, and what failed."""
    where = str(jobs[0].target) if len(jobs) == 1 else f"{output}/"
    parts = []
    if images:
        parts.append(f"{images} image(s) written, {images / elapsed:.2f} images/s")
    if videos:
        parts.append(f"{frames} frame(s) in {videos} video(s), {frames / elapsed:.2f} frames/s")
    if not parts:
        return f"nothing written, {failures} failed"
    return f"{'; '.join(parts)}; {failures} failed; output in {where}"


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
