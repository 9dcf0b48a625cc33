"""The `stylenet` command's arguments: every subcommand's options and help, parsed without loading a model."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from stylenet.benchmark.run import add_parser as add_benchmark_parser
from stylenet.commands.stylize import COMPILE_MIN_IMAGES
from stylenet.inference.tiling import MIN_TILE

SHIPPED = "(wave, a blend such as starry=0.7,wave=0.3, or paintings: see stylenet models)"


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


def parser() -> argparse.ArgumentParser:
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
