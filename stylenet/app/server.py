"""Starting the page: the catalog, the handlers and the layout, served on one queue, offline.

Both steps check their options first (`options`), so a mistake is one line rather than a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr

from stylenet.app import options
from stylenet.app.catalog import Catalog
from stylenet.app.handlers import Handlers
from stylenet.app.layout import build, theme
from stylenet.errors import StylenetError

HOST = "127.0.0.1"
PORT = 7860
MAX_FILE_SIZE = "200MB"


def create(models_dir: Path | None, device: str = "cpu", max_memory: int | None = None) -> gr.Blocks:
    """The page for the shipped styles and the `.pt` files of `models_dir`; the first model that loads is loaded
    now (one StylenetError line where none does), and each model left out is said in a line on stderr."""
    if models_dir is not None:
        from stylenet.pretrained import kept_models_dir

        # The default folder appears with the first trained model; any other was named by the user and must exist.
        options.check_models(models_dir, missing_ok=models_dir == kept_models_dir())
    catalog = Catalog(models_dir, device=device)
    page = build(Handlers(catalog, max_memory=max_memory))
    for note in catalog.notes:  # the page says it too, but whoever started the server reads this first
        print(f"note: {note}", file=sys.stderr)
    # One model run at a time across the page (see layout.RUN); other events need no limit.
    return page.queue(default_concurrency_limit=1)


def launch(
    page: gr.Blocks, host: str = HOST, port: int = PORT, max_file_size: str | int = MAX_FILE_SIZE, block: bool = True
) -> str:
    """Serves `page` at http://host:port; returns its address (at once when `block` is False)."""
    options.check(host, port, max_file_size)
    try:
        _, url, _ = page.launch(
            server_name=host,
            server_port=port,
            share=False,  # a share link tunnels through a third-party server
            max_file_size=max_file_size,
            prevent_thread_lock=not block,
            quiet=not block,
            show_error=True,
            footer_links=[],
            theme=theme(),
            ssr_mode=False,  # server-side rendering would start Node
            mcp_server=False,
            pwa=False,
        )
    except OSError as error:
        if "Cannot find empty port" not in str(error):
            raise
        # Free when checked, not at launch: taken meanwhile, or in use on 127.0.0.1, which Gradio tries too.
        options.check_address(host, port)
        raise StylenetError(options.unbindable(host, port)) from None
    return url
