"""Photos scored for `stylenet evaluate`: a model's output and the optimisation's (Gatys et al. 2016) per
photo, on the loss, wall-clock time and SSIM, and the mean of the rows."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms.functional import center_crop, pil_to_tensor, resize

from stylenet.errors import StylenetError
from stylenet.imageio import UnreadableImageError, list_images, open_rgb
from stylenet.inference.model import Stylizer
from stylenet.losses.perceptual import PerceptualLoss
from stylenet.optimize import optimize

# Beyond this many times the crop's pixels, a photo is resized only where its crop falls: a 1x30000 px strip
# resized whole to a 512 px shorter side is 512x15,360,000 px (23 GB). Within it, photos are resized whole,
# as the reports in docs/ were made (the two ways differ by one level in a few pixels).
_WHOLE_RESIZE_LIMIT = 4


def _load_photo(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: shorter side resized to `size`, then centre-cropped."""
    photo = open_rgb(path)
    width, height = photo.size
    resized = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    if resized[0] * resized[1] <= _WHOLE_RESIZE_LIMIT * size * size:
        picture = center_crop(resize(photo, size, interpolation=Image.Resampling.BICUBIC, antialias=True), [size, size])
    else:  # the same crop, its box taken back to the photo's own pixels
        left, top = round((resized[0] - size) / 2), round((resized[1] - size) / 2)
        scale_x, scale_y = width / resized[0], height / resized[1]
        box = (left * scale_x, top * scale_y, (left + size) * scale_x, (top + size) * scale_y)
        picture = photo.resize((size, size), Image.Resampling.BICUBIC, box=box)
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


def _loss_values(loss: PerceptualLoss, output: torch.Tensor, content: torch.Tensor) -> dict[str, Any]:
    """The weighted terms and total, and each style layer's unweighted relative error (`style_layers`)."""
    with torch.no_grad():
        terms, errors = loss.terms_and_style_errors(output, content)
        values: dict[str, Any] = {k: float(v) for k, v in terms.as_dict().items()}
        values["style_layers"] = {k: float(v.mean()) for k, v in errors.items()}
    return values


def _mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Field-by-field mean of per-image results (nested dicts averaged recursively); steps to match are
    not averaged (`summary` finds the mean's own)."""
    out: dict[str, Any] = {}
    for key, value in rows[0].items():
        if key == "steps_to_match":
            continue
        if isinstance(value, dict):
            out[key] = _mean([row[key] for row in rows])
        elif isinstance(value, (int, float)):
            out[key] = statistics.fmean(row[key] for row in rows)
    return out


def _steps_to_match(history: list[float], total: float) -> int | None:
    """The fewest optimisation steps whose loss is at or below `total` (`history[i]`: after step i);
    None where every step of the optimisation stays above it (the model did better)."""
    return next((step for step, value in enumerate(history) if value <= total), None)


def _mean_history(rows: list[dict[str, Any]]) -> list[float] | None:
    """The optimisation's loss after each step, averaged over `rows`; None where a row has none (a
    report written before the histories were kept) or the rows' step counts differ."""
    histories = [row.get("optimisation", {}).get("history") for row in rows]
    if not histories or any(h is None or len(h) != len(histories[0]) for h in histories):
        return None
    return [statistics.fmean(values) for values in zip(*histories, strict=True)]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of `rows`, whose ratio is that of the mean totals (model / optimisation), not a mean of
    per-photo ratios: one photo the optimisation handles unusually well must not outweigh the rest.
    Likewise its steps to match are those of the mean optimisation loss against the mean model loss."""
    mean = _mean(rows)
    if "ratio_total" in mean:
        mean["ratio_total"] = mean["model"]["total_loss"] / max(mean["optimisation"]["total_loss"], 1e-12)
    history = _mean_history(rows)
    if history is not None:
        mean["optimisation"]["history"] = history
        mean["steps_to_match"] = _steps_to_match(history, mean["model"]["total_loss"])
    return mean


def load_photos(photos: Path, size: int, target: torch.device) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
    """The readable photos (name, (1, 3, size, size)) and the names of those skipped as unreadable."""
    loaded, skipped = [], []
    for path in list_images(photos):
        try:
            loaded.append((str(path.relative_to(photos)), _load_photo(path, size).to(target)))
        except UnreadableImageError:
            skipped.append(str(path.relative_to(photos)))
    if not loaded:
        raise StylenetError(f"{photos}: no usable photos ({len(skipped)} unreadable file(s) skipped)")
    return loaded, skipped


def score(
    stylizer: Stylizer,
    loss: PerceptualLoss,
    photos: list[tuple[str, torch.Tensor]],
    gatys_steps: int,
    method: str,
    seed: int,
    target: torch.device,
    photo_hashes: dict[str, str],
    reused: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[torch.Tensor], list[torch.Tensor]]:
    """Per-photo results of `stylizer` (and of the optimisation unless `gatys_steps` is 0, or as `reused`
    gives it by photo) on `loss`, with the optimised images and the model's outputs for the grid."""
    rows, optimised_images, outputs = [], [], []
    for name, content in photos:
        stylizer(content)  # warm-up: the first call pays for allocations and kernel selection
        output, model_seconds = _timed(lambda c=content: stylizer(c), target)
        model_losses = _loss_values(loss, output, content)
        row: dict[str, Any] = {"photo": name, "photo_sha256": photo_hashes[name]}
        row["model"] = {**model_losses, "seconds": model_seconds, "ssim": _ssim(output, content)}
        if reused is not None:
            optim_losses = reused[name]
            row["optimisation"] = optim_losses
            row["ratio_total"] = model_losses["total_loss"] / max(optim_losses["total_loss"], 1e-12)
            row["speedup"] = optim_losses["seconds"] / max(model_seconds, 1e-9)
        elif gatys_steps:
            # Re-seeded per photo, so each photo's result does not depend on which photos came before.
            torch.manual_seed(seed)
            (optimised, history), optim_seconds = _timed(
                lambda c=content: optimize(c, loss, steps=gatys_steps, method=method), target
            )
            optim_losses = _loss_values(loss, optimised, content)
            row["optimisation"] = {**optim_losses, "seconds": optim_seconds, "ssim": _ssim(optimised, content)}
            row["optimisation"]["history"] = [float(f"{value:.6g}") for value in history]  # 6 digits: a short file
            row["ratio_total"] = model_losses["total_loss"] / max(optim_losses["total_loss"], 1e-12)
            row["speedup"] = optim_seconds / max(model_seconds, 1e-9)
            optimised_images.append(optimised[0].detach().cpu())
        if "history" in row.get("optimisation", {}):
            row["steps_to_match"] = _steps_to_match(row["optimisation"]["history"], model_losses["total_loss"])
        rows.append(row)
        outputs.append(output[0].detach().cpu())
    return rows, optimised_images, outputs
