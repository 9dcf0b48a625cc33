"""How closely `--tile` output agrees with one pass over the whole image (PSNR, dB).

    python scripts/tile_agreement.py checkpoints/starry.pt [--side 1536] [--tile 384]

Compares per-tile instance-norm statistics with whole-image ones for several reference sizes,
on scikit-image's astronaut photo resized to SIDE x SIDE.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from skimage import data

import stylenet.inference.global_norm as global_norm
from stylenet.checkpoint import load_inference_checkpoint
from stylenet.inference.tiling import stylize_tiled


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * torch.log10(1 / (a - b).pow(2).mean()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--side", type=int, default=1536)
    parser.add_argument("--tile", type=int, default=384)
    args = parser.parse_args()
    network, _ = load_inference_checkpoint(args.model)
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255)[None]  # (1, 3, 512, 512)
    image = F.interpolate(photo, size=(args.side, args.side), mode="bicubic").clamp(0, 1)
    with torch.inference_mode():
        whole = network(image)
        alone = psnr(stylize_tiled(network, image, args.tile), whole)
        print(f"{args.side} px, tiles of {args.tile}: per-tile statistics {alone:.1f} dB")
        for side in (512, 768, 1024):
            global_norm.REFERENCE_SIDE = side
            with global_norm.whole_image_statistics(network, image):
                tiled = stylize_tiled(network, image, args.tile)
            print(f"  whole-image statistics from a {side} px reference: {psnr(tiled, whole):.1f} dB")


if __name__ == "__main__":
    main()
