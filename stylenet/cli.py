"""The `stylenet` command: parses its arguments and hands each subcommand to its handler in stylenet/commands/."""

from __future__ import annotations

import sys
from pathlib import Path

from stylenet.benchmark.run import run as run_benchmark
from stylenet.commands.app import run as run_app
from stylenet.commands.arguments import parser as _parser
from stylenet.commands.export import run as run_export
from stylenet.commands.models import run as run_models
from stylenet.commands.stylize import COMPILE_MIN_IMAGES, speed_choices
from stylenet.commands.stylize import run as run_stylize
from stylenet.errors import StylenetError

# Also reached through the command itself: how `stylize` decides on compiling and memory reuse.
__all__ = ["COMPILE_MIN_IMAGES", "main", "speed_choices"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `stylize MODEL --size 512 photo.jpg`: argparse takes no positionals after an option once the
        # inputs' list has been read (empty); such inputs are the user's, wherever they stand.
        if args.command == "stylize" and not any(arg.startswith("-") for arg in extra):
            args.inputs += [Path(arg) for arg in extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "models":
            return run_models()
        _note_shadowed(getattr(args, "model", None) or getattr(args, "checkpoint", None))
        if args.command == "export":
            return run_export(args)
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
            return run_app(args)
        return run_stylize(args)
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _note_shadowed(model: Path | None) -> None:
    """One note where a shipped style's name is also the name of the user's own model file."""
    if model is None:
        return
    from stylenet.pretrained import shadow_note

    note = shadow_note(model)
    if note:
        print(note, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
