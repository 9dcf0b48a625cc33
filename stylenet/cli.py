"""The `stylenet` command: `export` models and `stylize` images, folders, video and webcam."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NoReturn

from stylenet.benchmark.run import add_parser as add_benchmark_parser
from stylenet.benchmark.run import run as run_benchmark
from stylenet.errors import StylenetError
from stylenet.inference.tiling import MIN_TILE

SHIPPED = "(wave, a blend such as starry=0.7,wave=0.3, or paintings: see stylenet models)"
# Compiling costs ~20 s once on a 2-core CPU and saves ~0.1 s per 512 px image: worth it from here.
COMPILE_MIN_IMAGES = 32


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" where there is a default worth showing and the help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        # A flag (store_true/store_false) has no value to show: "(default: True)" on --no-train misleads.
        if action.default is None or action.nargs == 0 or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's help shows its defaults; a mistake in the arguments is one line, as every other
    error is, rather than argparse's usage summary of every option followed by the error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


class _OutputPath(argparse.Action):
    """Stores -o as a Path, and in `output_is_folder` whether it ended in a slash: Path drops the slash, yet
    `-o out/v1.0/` names a folder, not a file with the suffix .0."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, Path(values))
        namespace.output_is_folder = values.endswith(("/", os.sep))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stylenet", description="Run, export, evaluate and benchmark feed-forward style transfer models."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    export = commands.add_parser("export", help="export a checkpoint as a single-pass ONNX or torch.export model")
    export.add_argument(
        "checkpoint", type=Path, help=f"a .pt inference checkpoint or a Lightning .ckpt, or a shipped style {SHIPPED}"
    )
    export.add_argument(
        "--format",
        default="all",
        choices=["onnx", "pt2", "aoti", "all"],
        help="all: both onnx and pt2, which run anywhere; aoti: the fast path compiled ahead of time for CPUs "
        "like this one (a .aoti.pt2 package, several times faster; needs a C++ compiler, a minute or two)",
    )
    export.add_argument(
        "-o",
        "--output",
        action=_OutputPath,
        default=None,
        help="file or folder (a trailing / makes it a folder; default: beside the input; for a shipped style, "
        "the working directory)",
    )
    export.set_defaults(output_is_folder=False)
    export.add_argument(
        "--style",
        help="for a model of several styles, bake in one style or blend, e.g. wave or starry=0.7,wave=0.3 "
        "(default: every style, chosen by the exported model's second input)",
    )
    export.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "fp32", "int8"],
        help="an aoti package's: auto: bf16 where this CPU runs it natively, else fp32; int8: the first layer's "
        "and the residual blocks' convolutions in int8 (faster with AVX512-VNNI or AMX-INT8); onnx and pt2 are fp32",
    )
    export.add_argument("--overwrite", action="store_true", help="replace exported files that exist already")

    stylize = commands.add_parser("stylize", help="stylize images, folders or videos")
    stylize.add_argument("model", type=Path, help=f"a .pt, .ckpt, .onnx or .pt2 model, or a shipped style {SHIPPED}")
    stylize.add_argument("inputs", nargs="*", type=Path, help="image files, folders (recursive) or video files")
    stylize.add_argument(
        "-o",
        "--output",
        action=_OutputPath,
        default=Path("stylized"),
        help="output folder (a trailing / makes any name one), or a file name for a single input (default: stylized/)",
    )
    stylize.set_defaults(output_is_folder=False)
    size = stylize.add_mutually_exclusive_group()
    size.add_argument(
        "--size", type=int, help="resize so that the longest side is N pixels (default: each image at its own size)"
    )
    size.add_argument("--scale", type=float, help="resize by this factor (default: 1)")
    stylize.add_argument(
        "--style",
        metavar="NAME|NAME=W,...",
        help="for a model of several styles: one of them, or a blend such as starry=0.7,wave=0.3 (weights are "
        "relative). Default: its first style; a run without --style notes the model's styles, and a name it "
        "does not hold is refused with the list",
    )
    stylize.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    stylize.add_argument("--strength", type=float, default=1.0, help="0 gives the content, 1 the full style")
    stylize.add_argument(
        "--tile",
        type=int,
        help=f"process in overlapping N x N tiles, N >= {MIN_TILE} (default: tiles only where an image "
        "would not fit in --max-memory)",
    )
    stylize.add_argument(
        "--max-memory",
        help="memory one image may take, like 8G or 512M; larger images are tiled, or refused if even "
        "tiles cannot fit (default: half the available RAM; on a GPU also 80%% of its free memory)",
    )
    stylize.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    stylize.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="auto: bf16 where the CPU/GPU runs it natively (.pt/.ckpt), else fp32; int8: CPUs, compiled, "
        "the first layer's and the residual blocks' convolutions in int8 (faster with int8 matrix units)",
    )
    stylize.add_argument(
        "--compile",
        default="auto",
        choices=["auto", "on", "off"],
        help=f"torch.compile the network: slow once, then faster; auto: for videos, webcam, --benchmark, "
        f"--precision int8 and {COMPILE_MIN_IMAGES}+ images",
    )
    stylize.add_argument(
        "--memory-reuse",
        default="auto",
        choices=["auto", "on", "off"],
        help="keep freed memory for later frames: faster, but a higher peak; auto: for videos, webcam, "
        f"--benchmark and {COMPILE_MIN_IMAGES}+ images",
    )
    stylize.add_argument("--batch-size", type=int, default=4, help="images (of equal size) or frames per batch")
    stylize.add_argument("--benchmark", action="store_true", help="time the model on synthetic frames and exit")
    stylize.add_argument("--webcam", type=int, metavar="N", help="stylize camera N live (needs opencv-python)")
    stylize.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that exist already (an output over an input is refused all the same)",
    )

    _add_evaluate_parser(commands)
    add_benchmark_parser(commands)
    commands.add_parser("models", help="list the shipped styles, with a line of each one's model card")
    _add_app_parser(commands)
    return parser


def _add_app_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app", help='a web page to stylize photos, videos and the webcam (needs pip install -e ".[app]")'
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on; 0.0.0.0 opens it to the network")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder whose .pt files the page offers beside the shipped styles (default: checkpoints/)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--max-memory",
        help="memory one image may take, like 8G; larger images are tiled (default: half the available RAM)",
    )
    parser.add_argument("--max-file-size", default="200MB", help="largest upload accepted, like 200MB or 1GB")


def _add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """`evaluate` is declared here so that parsing arguments never imports the loss network."""
    parser = subparsers.add_parser(
        "evaluate", help="compare a model with per-image optimisation (Gatys et al. 2016) on loss, time and SSIM"
    )
    parser.add_argument("model", type=Path, help=f"a .pt, .ckpt, .onnx or .pt2 model, or a shipped style {SHIPPED}")
    parser.add_argument("--photos", type=Path, help="folder of photos (recursive); --photos, --video or both")
    parser.add_argument(
        "--video",
        type=Path,
        nargs="+",
        help="video clips: the warping error of the model's frames (flicker), written to video_report.md",
    )
    parser.add_argument(
        "--baseline", help="with --video: a second model measured on the same clips, and the model's ratio to it"
    )
    parser.add_argument("--frames", type=int, default=100, help="with --video: the first N frames of each clip")
    parser.add_argument(
        "--video-size", type=int, help="with --video: frames scaled to N px on the longest side (default: as they are)"
    )
    parser.add_argument(
        "--style",
        help="a model of several styles: the one of its styles to score (default: every one, a report row each); "
        "a model of one style: a style name from configs/style/ or an image path (default: the model's)",
    )
    parser.add_argument("-o", "--output", type=Path, default=None, help="report folder (default: evaluation/MODEL)")
    parser.add_argument("--overwrite", action="store_true", help="replace a report that exists already in the folder")
    parser.add_argument(
        "--gatys-steps",
        type=int,
        default=300,
        help="optimisation steps per photo; 0 skips the optimisation reference (the model's own losses only)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="an earlier report (report.json or its folder) on the same loss, paintings and photos: its "
        "optimisation results are reused instead of run again, e.g. to compare several models",
    )
    parser.add_argument("--size", type=int, default=256, help="photos are centre-cropped to N x N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vgg-weights", help="override the loss network: caffe, torchvision, random or a path")
    parser.add_argument("--method", default="lbfgs", choices=["lbfgs", "adam"], help="optimiser for the reference")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--memory-reuse",
        default="auto",
        choices=["auto", "on", "off"],
        help="keep freed memory for the next optimisation step: faster, at a higher peak; auto: on",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "models":
            return _models()
        _note_shadowed(getattr(args, "model", None) or getattr(args, "checkpoint", None))
        if args.command == "export":
            return _export(args)
        if args.command == "evaluate":
            from stylenet.pretrained import resolve

            resolve(args.model, args.style)  # a bad choice beside a shipped name, said before anything loads
            from stylenet.evaluate import run as run_evaluate
            from stylenet.hardware import keep_freed_memory, wants_memory_reuse

            # auto: on, as the reference optimisation repeats one step hundreds of times
            if wants_memory_reuse(args.memory_reuse, repeated_work=True):
                keep_freed_memory()
            return run_evaluate(args)
        if args.command == "benchmark":
            return run_benchmark(args)
        if args.command == "app":
            return _app(args)
        return _stylize(args)
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    from stylenet.atomic_write import replacing
    from stylenet.inference.export import PORTABLE, choose_style, export, export_targets, file_stem
    from stylenet.inference.model import load_network
    from stylenet.inference.runner import check_folder, refuse_existing
    from stylenet.pretrained import resolve

    formats = PORTABLE if args.format == "all" else (args.format,)
    precision = None if args.precision == "auto" else args.precision
    if precision is not None:
        if formats != ("aoti",) and precision != "fp32":
            raise StylenetError(f"--precision {precision} is for --format aoti: onnx and pt2 files run in fp32")
        from stylenet.inference.aot_package import check_precision

        check_precision(precision)
    if "aoti" in formats:
        from stylenet.inference.aot_package import check_compiler

        check_compiler()  # before the model loads and the -o folder is made
    if args.output is not None:
        # A name of the wrong kind, refused before the model loads.
        export_targets(args.output, formats, "model", args.output_is_folder)
    resolved = resolve(args.checkpoint, args.style)
    network, metadata = load_network(resolved.path)
    baked, baked_metadata = choose_style(network, metadata, resolved.style)  # a bad choice stops here
    # A baked choice is named after itself: "wave.onnx" beside "starry+wave.pt", not over its export.
    stem = file_stem(baked_metadata) if baked is not network else resolved.path.stem
    # Nothing is written into the installed package: a shipped style exports to the working directory.
    out = args.output or (Path(".") if resolved.shipped else args.checkpoint.parent)
    targets = export_targets(out, formats, stem, args.output_is_folder)
    check_folder(out, targets[0].parent)
    if not args.overwrite:
        refuse_existing(targets)
    for fmt, target in zip(formats, targets, strict=True):
        try:
            with replacing(target) as partial:  # a failed write keeps the file it would have replaced
                export(baked, baked_metadata, partial, fmt, precision=precision)
        except OSError as error:
            raise StylenetError(f"{target}: cannot write ({error.strerror or error})") from None
        print(f"wrote {target}")
    return 0


def _app(args: argparse.Namespace) -> int:
    """`stylenet app`: the web page, served until interrupted."""
    import os

    max_memory = _max_memory(args.max_memory)
    from stylenet.app import options

    options.check(args.host, args.port, args.max_file_size, args.models)  # before the page's slow build
    # Gradio reports usage and checks for updates online unless told not to; a local tool stays offline.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from stylenet.app import server
    except ImportError as error:
        if error.name != "gradio":
            raise
        raise StylenetError('stylenet app needs Gradio: pip install -e ".[app]"') from None
    from stylenet.inference.model import resolve_device
    from stylenet.pretrained import kept_models_dir

    resolve_device(args.device, "--device ")  # a bad --device is one line here, not an error on the page
    page = server.create(args.models or kept_models_dir(), device=args.device, max_memory=max_memory)
    print(f"stylenet app: http://{args.host}:{args.port} (Ctrl+C to stop)", file=sys.stderr)
    server.launch(page, args.host, args.port, args.max_file_size)
    return 0


def _note_shadowed(model: Path | None) -> None:
    """One note where a shipped style's name is also the name of the user's own model file."""
    if model is None:
        return
    from stylenet.pretrained import shadow_note

    note = shadow_note(model)
    if note:
        print(note, file=sys.stderr)


def _models() -> int:
    """`stylenet models`: the shipped styles, a line of each one's card, and where the file is."""
    from stylenet.pretrained import BUNDLE, shipped
    from stylenet.pretrained.card import one_line

    bundle = shipped()
    width = max(len(name) for name in bundle.styles)
    blend = f"{bundle.styles[0]}=0.7,{bundle.styles[1]}=0.3" if len(bundle.styles) > 1 else bundle.styles[0]
    print(f"shipped styles (stylenet stylize NAME photo.jpg; blends as {blend}):")
    for name in bundle.styles:
        print(f"  {name:<{width}}  {one_line(bundle.card, name)}")
    size = bundle.path.stat().st_size / 1e6
    print(f"all of them: {BUNDLE} (--style NAME); file: {bundle.path} ({size:.1f} MB)")
    return 0


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
    if not (args.inputs or args.benchmark or args.webcam is not None):
        raise StylenetError("give at least one image, folder or video (or --benchmark, --webcam N)")
    return _max_memory(args.max_memory)


def _max_memory(text: str | None) -> int | None:
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


def _stylize(args: argparse.Namespace) -> int:
    from stylenet.hardware import keep_freed_memory
    from stylenet.inference.model import load_model
    from stylenet.inference.runner import Settings, plan_jobs, run_images, run_video
    from stylenet.pretrained import resolve

    max_memory = _check_stylize_args(args)
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

        return run_webcam(stylizer, args.webcam, settings)
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


if __name__ == "__main__":
    sys.exit(main())
