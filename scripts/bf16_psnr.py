"""How far bf16 inference is from fp32, per network and per instruction set oneDNN may use.

    python scripts/bf16_psnr.py [--size 1920x1080] [--isa DEFAULT,AVX512_CORE]

For each network (random weights, the test suite's quickstart model, each shipped style) it runs
scikit-image's astronaut through the eager fp32 network and through the bf16 fast path (the copy
`stylenet stylize` runs, uncompiled) and prints the PSNR of the bf16 output against fp32. Each
`--isa` value runs in its own process with ONEDNN_MAX_CPU_ISA set to it (oneDNN's cap on the
instructions it may use; DEFAULT: none): AVX512_CORE takes the bf16 dot-product instructions
away, so bf16 is converted to fp32 and multiplied there. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _networks():
    import torch

    from stylenet import pretrained
    from stylenet.inference.model import load_network
    from stylenet.networks.style_rows import bake_style
    from stylenet.networks.transformer import TransformerNet

    torch.manual_seed(0)
    yield "random weights (seed 0)", TransformerNet()
    yield "quickstart (tests/data)", load_network(REPO / "tests" / "data" / "quickstart_starry.pt")[0]
    shipped, metadata = load_network(pretrained.LOCATION)
    for index, style in enumerate(metadata["styles"]):
        yield f"shipped {style['name']}", bake_style(shipped, torch.eye(shipped.num_styles)[index])


def _measure(height: int, width: int) -> dict[str, float]:
    """Child mode: PSNR (dB) of the bf16 fast path against eager fp32, per network."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    from stylenet.inference.fast import FastRunner

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    x = F.interpolate(photo, size=(height, width), mode="bilinear", antialias=True).clamp(0, 1)
    results = {}
    for name, network in _networks():
        network.eval()
        with torch.no_grad():
            reference = network(x)
            fast = FastRunner(network, torch.device("cpu"), "bf16")(x).float().clamp(0, 1)
        mse = (fast - reference).pow(2).mean().item()
        results[name] = 10 * math.log10(1 / mse) if mse > 0 else math.inf
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--isa", default="DEFAULT,AVX512_CORE", help="ONEDNN_MAX_CPU_ISA values, comma-separated")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(_measure(height, width)))
        return 0
    columns = {}
    for isa in args.isa.split(","):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if isa != "DEFAULT":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        command = [sys.executable, __file__, "--child", "--size", args.size]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        columns[isa] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"PSNR (dB) of bf16 (fast path, eager) against fp32 at {width}x{height}; columns: ONEDNN_MAX_CPU_ISA\n")
    print("| network | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in next(iter(columns.values())):
        print(f"| {name} | " + " | ".join(f"{column[name]:.1f}" for column in columns.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
