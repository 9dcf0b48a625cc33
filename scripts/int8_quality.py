"""How far `precision="int8"` is from fp32, per shipped style, photo and size.

    python scripts/int8_quality.py [--sizes 256x256,640x480,1024x768] [--photos DIR] [--tail T] [--networks NAMES]

Each shipped style and the test suite's quickstart model (`quickstart`) run scikit-image's astronaut and
chelsea, and every photo in `--photos`, through the eager fp32 network and through the compiled int8
path (what `FastRunner(..., "int8", compile=True)` builds, with `--tail`; at every size compiled),
and the PSNR of the int8 output against fp32 is printed as a Markdown table, with the compiled bf16
path's beside it. None of these photos is one the int8 ranges are calibrated on
(`int8_convs.CALIBRATION_PHOTOS`).
`--tail`: the share of each calibrated input left out at either end (`int8_convs.TAIL`; 0: the full range).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _photos(folder: str | None):
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    photos = {"astronaut": data.astronaut(), "chelsea": data.chelsea()}
    for path in sorted(Path(folder).iterdir()) if folder else []:
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            photos[path.stem] = np.array(Image.open(path).convert("RGB"))
    return {name: torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0) for name, rgb in photos.items()}


def _psnr(a, b) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x256,640x480,1024x768", help="WxH, comma-separated")
    parser.add_argument("--photos", help="a folder of further photos to score")
    parser.add_argument("--tail", type=float, help="default: int8_convs.TAIL")
    parser.add_argument("--networks", help="comma-separated: quickstart and shipped style names (default: all)")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from stylenet import pretrained
    from stylenet.benchmark.machine import machine_info
    from stylenet.benchmark.report import machine_lines
    from stylenet.benchmark.reuse_processes import heights_widths
    from stylenet.inference.fast import FastRunner
    from stylenet.inference.model import load_network
    from stylenet.networks import int8_convs
    from stylenet.networks.style_rows import bake_style

    tail = int8_convs.TAIL if args.tail is None else args.tail
    sizes = heights_widths(args.sizes)
    photos = _photos(args.photos)
    shipped, metadata = load_network(pretrained.LOCATION)
    networks = {"quickstart": load_network(REPO / "tests" / "data" / "quickstart_starry.pt")[0].eval()}
    for index, style in enumerate(metadata["styles"]):
        networks[style["name"]] = bake_style(shipped, torch.eye(shipped.num_styles)[index]).eval()
    if args.networks:
        networks = {name: networks[name] for name in args.networks.split(",")}
    print("\n".join(machine_lines(machine_info())))
    print(f"\ntail {tail}\n")
    print("| network | size | int8: min / median PSNR (dB) | compiled bf16: min / median PSNR (dB) |")
    print("|---|---|---|---|")
    cpu = torch.device("cpu")
    for name, network in networks.items():
        torch._dynamo.reset()  # each network's graphs compiled afresh, none counted against the earlier ones
        int8 = FastRunner(network, cpu, "bf16", compile=True, eager_for_fresh_pages=False)
        int8_convs.quantize(int8.module, network, tail)
        bf16 = FastRunner(network, cpu, "bf16", compile=True, eager_for_fresh_pages=False)
        for height, width in sizes:
            scores: dict[str, list[float]] = {"int8": [], "bf16": []}
            with torch.inference_mode():
                for photo in photos.values():
                    x = F.interpolate(photo, size=(height, width), mode="bilinear", antialias=True).clamp(0, 1)
                    reference = network(x)
                    scores["int8"].append(_psnr(int8(x).clamp(0, 1), reference))
                    scores["bf16"].append(_psnr(bf16(x).clamp(0, 1), reference))
            if not (int8.compiled and bf16.compiled):
                raise SystemExit(f"{name}: a runner fell back to eager; its figures would not be the compiled graph's")
            cells = [f"{min(s):.1f} / {statistics.median(s):.1f}" for s in scores.values()]
            print(f"| {name} | {width}x{height} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
