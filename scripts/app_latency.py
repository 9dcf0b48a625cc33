"""How much the web app adds to a photo's stylisation: the page's round trip against the stylizer alone.

    python scripts/app_latency.py [--model wave] [--size 512] [--repeats 5]

Three ways to the same result, one after the other: the command `stylenet stylize` as a user runs it
(a new process that loads the model), the stylizer inside this process on a loaded model (read the
photo, stylize, write a PNG: the part of the command the app cannot skip), and a request to `stylenet app`
on a local port through Gradio's own client (upload, queue, the same work, the result sent back). Prints
the medians and the app's ratio to each; the photo is scikit-image's astronaut at `--size` px. Last, the
same stylizer compiled (`load_model(..., compile=True)`): what compiling costs once, what it saves a photo,
and after how many photos of one style it pays (the page does not compile: each new blend is a new network).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file
from PIL import Image
from skimage import data

from stylenet import load_model
from stylenet.app import server
from stylenet.app.handlers import SLIDERS
from stylenet.benchmark.machine import machine_info


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up: allocations, kernel choice, the client's first connection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wave", help="a shipped style (the app lists those by name)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    photo = folder / "photo.png"
    Image.fromarray(data.astronaut()).resize((args.size, args.size), Image.Resampling.LANCZOS).save(photo)

    # The installed command, started as a shell would (its own interpreter, imports and model load).
    command = [sys.executable, "-m", "stylenet.cli", "stylize", args.model, str(photo), "-o", str(folder / "cli.png")]
    command.append("--overwrite")  # each repeat writes the same file
    cli = _median_seconds(lambda: subprocess.run(command, check=True, capture_output=True), args.repeats)
    stylizer = load_model(args.model)
    direct = _median_seconds(lambda: stylizer.stylize_image(photo).save(folder / "out.png"), args.repeats)

    started = time.perf_counter()
    compiled = load_model(args.model, compile=True)
    compiled.stylize_image(photo)  # compiles on the first call
    compiling = time.perf_counter() - started
    fast = _median_seconds(lambda: compiled.stylize_image(photo).save(folder / "out.png"), args.repeats)

    page = server.create(None)
    url = server.launch(page, port=_free_port(), block=False)
    client = Client(url, verbose=False)
    request = (args.model, handle_file(str(photo)), args.size, 1.0, False, *([0.0] * SLIDERS))
    app = _median_seconds(lambda: client.predict(*request, api_name="/photo"), args.repeats)
    page.close()
    machine = machine_info()
    flags = ", ".join(flag for flag, present in machine["cpu_flags"].items() if present)
    print(f"{machine['cpu_model']}, {machine['torch_num_threads']} threads ({flags})")
    print(f"{args.size} px photo, model {args.model}, median of {args.repeats}:")
    print(f"  `stylenet stylize` command (new process): {cli:.3f} s")
    print(f"  stylizer alone (read, stylize, write PNG): {direct:.3f} s")
    print(f"  through the app (upload, queue, stylize, send back): {app:.3f} s")
    print(f"  app / command: {app / cli:.2f}x, {app - cli:+.3f} s")
    print(f"  app / stylizer: {app / direct:.2f}x, {app - direct:+.3f} s")
    saved = direct - fast
    pays = f"pays after {compiling / saved:.0f} photos" if saved > 0 else "never pays"
    print(f"  stylizer compiled ({compiled.backend}): {fast:.3f} s; compiling + first call {compiling:.1f} s: {pays}")


if __name__ == "__main__":
    main()
