"""`stylenet app`: its options checked, then the web page of stylenet.app served until interrupted."""

from __future__ import annotations

import argparse
import sys

from stylenet.commands.stylize import max_memory_bytes
from stylenet.errors import StylenetError


def run(args: argparse.Namespace) -> int:
    """`stylenet app`: the web page, served until interrupted."""
    import os

    max_memory = max_memory_bytes(args.max_memory)
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
