"""`stylenet export`: a model as single-pass ONNX, torch.export or ahead-of-time compiled files."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylenet.errors import StylenetError


def run(args: argparse.Namespace) -> int:
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
