"""`stylenet evaluate`: a trained model against per-image optimisation (Gatys et al. 2016).

For each photo the model's output and the output of optimising the photo's pixels against the
same perceptual loss are compared on that loss (content, style, TV, total), on wall-clock time
and on SSIM to the photo. The optimisation is the quality a feed-forward model approximates, so
the ratio of totals says how close the model gets and the speed-up what it buys.

Writes `report.json`, `report.md` and `grid.png` (rows: content | optimisation | model).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms.functional import center_crop, pil_to_tensor, resize
from torchvision.utils import make_grid, save_image

from stylenet.config_files import default_loss, style_config
from stylenet.errors import ConfigError, StylenetError
from stylenet.imageio import UnreadableImageError, list_images, open_rgb
from stylenet.inference.model import load_model, resolve_device
from stylenet.losses.perceptual import PerceptualLoss, build_perceptual_loss
from stylenet.optimize import DEFAULT_LR, METHODS, optimize
from stylenet.styles import load_style_image

DEFAULT_STYLE_SIZE = 512
LOSS_KEYS = ("content_loss", "style_loss", "tv_loss", "total_loss")
LPIPS_NOTE = (
    "LPIPS not computed: it needs pretrained network weights downloaded at run time (lpips package / "
    "torchvision), which this offline evaluation does not fetch; SSIM to the content photo is reported instead."
)


def _resolve_style(
    style: str | None, metadata: dict[str, Any], loss_config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The style (name, image, size, source) to evaluate against, and the loss config it implies."""
    stored = metadata.get("style") or {}
    if style is None:
        if not stored.get("image"):
            raise ConfigError("the model's metadata names no style image; pass --style NAME or --style IMAGE")
        size = stored.get("size") or DEFAULT_STYLE_SIZE
        return {"name": stored.get("name"), "image": stored["image"], "size": size, "source": "model"}, loss_config
    config_path = style_config(style)
    if config_path is not None:
        from omegaconf import OmegaConf
        from omegaconf.errors import MissingMandatoryValue

        config = OmegaConf.load(config_path)
        try:
            image = config.image
        except MissingMandatoryValue as error:
            raise ConfigError(f"--style {style}: {config_path} has no image; pass --style /path/to/image") from error
        # A style config carries its own weights (configs/loss/perceptual.yaml reads them from it).
        weights = {k: float(config[k]) for k in ("content_weight", "style_weight", "tv_weight") if k in config}
        size = config.get("size") or DEFAULT_STYLE_SIZE
        resolved = {"name": config.get("name", style), "image": image, "size": size, "source": str(config_path)}
        return resolved, {**loss_config, **weights}
    if Path(style).expanduser().is_file():
        size = stored.get("size") or DEFAULT_STYLE_SIZE
        return {"name": Path(style).stem, "image": style, "size": size, "source": "path"}, loss_config
    raise ConfigError(f"--style {style}: neither a style name in configs/style/ nor an image file")


def _build_loss(
    metadata: dict[str, Any], style: str | None, vgg_weights: str | None
) -> tuple[PerceptualLoss, dict[str, Any], dict[str, Any], bool]:
    """The model's training loss (or the defaults), its definition, the style and whether defaults were used."""
    stored = metadata.get("loss")
    defaults_used = not stored
    known = set(inspect.signature(build_perceptual_loss).parameters) - {"style_image"}
    # Models whose metadata predates the stored loss definition get the configured defaults.
    # `_target_` (Hydra's) and any future keys are dropped: only build_perceptual_loss's arguments count.
    loss_config = {k: v for k, v in (stored or default_loss()).items() if k in known}
    style_info, loss_config = _resolve_style(style, metadata, loss_config)
    if vgg_weights is not None:
        loss_config["vgg_weights"] = vgg_weights
    style_image = load_style_image(str(style_info["image"]), int(style_info["size"]))
    return build_perceptual_loss(style_image, **loss_config), loss_config, style_info, defaults_used


def _load_photo(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: shorter side resized to `size`, then centre-cropped."""
    picture = resize(open_rgb(path), size, interpolation=Image.Resampling.BICUBIC, antialias=True)
    picture = center_crop(picture, [size, size])
    return pil_to_tensor(picture).float().div(255).unsqueeze(0).contiguous()


def _ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    a = image[0].permute(1, 2, 0).double().cpu().numpy()
    b = reference[0].permute(1, 2, 0).double().cpu().numpy()
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


def _timed(function, device: torch.device):
    """`function()` and its wall-clock seconds (CUDA work is waited for, so the time is real)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def _loss_values(loss: PerceptualLoss, output: torch.Tensor, content: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return {k: float(v) for k, v in loss(output, content).as_dict().items()}


def _mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Field-by-field mean of per-image results (nested dicts averaged recursively)."""
    out: dict[str, Any] = {}
    for key, value in rows[0].items():
        if isinstance(value, dict):
            out[key] = _mean([row[key] for row in rows])
        elif isinstance(value, (int, float)):
            out[key] = statistics.fmean(row[key] for row in rows)
    return out


def _markdown(report: dict[str, Any]) -> str:
    settings = report["settings"]
    header = (
        "| photo | model content | model style | model tv | model total | optim content | optim style | optim tv "
        "| optim total | ratio (model/optim) | model s | optim s | speed-up | SSIM model | SSIM optim |"
    )
    lines = [
        f"# Evaluation of `{settings['model']}`",
        "",
        f"- style: {settings['style']['name']} ({settings['style']['image']}, size {settings['style']['size']})",
        f"- loss: {json.dumps(settings['loss'])}" + (" (project defaults)" if settings["loss_defaults_used"] else ""),
        f"- optimisation (Gatys et al. 2016): {settings['method']}, {settings['gatys_steps']} steps, "
        f"lr {settings['lr']}",
        f"- size {settings['size']} px, seed {settings['seed']}, device {settings['device']}",
        f"- photos: {len(report['images'])} evaluated, {report['skipped_count']} skipped",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for row in [*report["images"], {**report["mean"], "photo": "**mean**"}]:
        m, o = row["model"], row["optimisation"]
        cells = [row["photo"]]
        cells += [f"{m[k]:.4g}" for k in LOSS_KEYS] + [f"{o[k]:.4g}" for k in LOSS_KEYS]
        cells += [f"{row['ratio_total']:.3f}", f"{m['seconds']:.4f}", f"{o['seconds']:.3f}", f"{row['speedup']:.1f}x"]
        cells += [f"{m['ssim']:.3f}", f"{o['ssim']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *[f"- {note}" for note in report["notes"]], ""]
    return "\n".join(lines)


def evaluate(
    model: str | Path,
    photos: str | Path,
    out_dir: str | Path,
    style: str | None = None,
    gatys_steps: int = 300,
    size: int = 256,
    seed: int = 0,
    vgg_weights: str | None = None,
    method: str = "lbfgs",
    device: str = "cpu",
) -> dict[str, Any]:
    """Compare `model` with Gatys-style optimisation on the photos in `photos`; write reports to `out_dir`.

    Returns the report written to `out_dir/report.json`.
    """
    photos, out_dir = Path(photos), Path(out_dir)
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if size < 8:
        raise ConfigError(f"--size must be at least 8 pixels, not {size}")
    if gatys_steps < 0:
        raise ConfigError(f"--gatys-steps must be 0 or more, not {gatys_steps}")
    if not photos.is_dir():
        raise StylenetError(f"{photos}: no such photos folder")
    torch.manual_seed(seed)
    target = resolve_device(device)
    stylizer = load_model(model, device=device, precision="fp32")  # the model itself, not a fast path
    loss, loss_config, style_info, defaults_used = _build_loss(stylizer.metadata, style, vgg_weights)
    loss = loss.to(target)

    images: list[dict[str, Any]] = []
    skipped: list[str] = []
    grid_rows: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
    for path in list_images(photos):
        try:
            content = _load_photo(path, size).to(target)
        except UnreadableImageError:
            skipped.append(str(path.relative_to(photos)))
            continue
        stylizer(content)  # warm-up: the first call pays for allocations and kernel selection
        output, model_seconds = _timed(lambda c=content: stylizer(c), target)
        # Re-seeded per photo, so each photo's result does not depend on which photos came before.
        torch.manual_seed(seed)
        (optimised, _history), optim_seconds = _timed(
            lambda c=content: optimize(c, loss, steps=gatys_steps, method=method), target
        )
        model_losses = _loss_values(loss, output, content)
        optim_losses = _loss_values(loss, optimised, content)
        images.append(
            {
                "photo": str(path.relative_to(photos)),
                "model": {**model_losses, "seconds": model_seconds, "ssim": _ssim(output, content)},
                "optimisation": {**optim_losses, "seconds": optim_seconds, "ssim": _ssim(optimised, content)},
                "ratio_total": model_losses["total_loss"] / max(optim_losses["total_loss"], 1e-12),
                "speedup": optim_seconds / max(model_seconds, 1e-9),
            }
        )
        for row, image in zip(grid_rows, (content, optimised, output), strict=True):
            row.append(image[0].detach().cpu())
    if not images:
        raise StylenetError(f"{photos}: no usable photos ({len(skipped)} unreadable file(s) skipped)")

    notes = [LPIPS_NOTE]
    if defaults_used:
        notes.append("the model's metadata holds no loss definition; the project's default loss was used")
    report = {
        "settings": {
            "model": str(model),
            "style": style_info,
            "loss": loss_config,
            "loss_defaults_used": defaults_used,
            "gatys_steps": gatys_steps,
            "method": method,
            "lr": DEFAULT_LR[method],
            "size": size,
            "seed": seed,
            "vgg_weights": loss_config.get("vgg_weights"),
            "device": str(target),
        },
        "images": images,
        "mean": _mean(images),
        "skipped": skipped,
        "skipped_count": len(skipped),
        "lpips": None,
        "notes": notes,
    }
    if not all(math.isfinite(v) for v in _numbers(report["mean"])):
        notes.append("some values are not finite (diverged optimisation or degenerate loss)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(_markdown(report))
    # make_grid fills rows of `nrow` images: one row per kind, one column per photo.
    grid = make_grid(grid_rows[0] + grid_rows[1] + grid_rows[2], nrow=len(images), padding=2)
    save_image(grid, out_dir / "grid.png")
    return report


def _numbers(tree: Any) -> list[float]:
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in _numbers(value)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def run(args: argparse.Namespace) -> int:
    """Run `evaluate` for parsed arguments; print where the report is. StylenetError propagates to main."""
    out_dir = args.output or Path("evaluation") / Path(args.model).stem
    report = evaluate(
        args.model,
        args.photos,
        out_dir,
        style=args.style,
        gatys_steps=args.gatys_steps,
        size=args.size,
        seed=args.seed,
        vgg_weights=args.vgg_weights,
        method=args.method,
        device=args.device,
    )
    mean = report["mean"]
    print(
        f"wrote {out_dir / 'report.md'}: {len(report['images'])} photo(s), {report['skipped_count']} skipped; "
        f"model/optimisation total loss {mean['ratio_total']:.3f}, speed-up {mean['speedup']:.0f}x"
    )
    return 0
