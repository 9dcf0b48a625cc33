"""`stylenet evaluate`: a trained model against per-image optimisation (Gatys et al. 2016).

For each photo the model's output and the output of optimising the photo's pixels against the
same perceptual loss are compared on that loss (content, style, TV, total), on wall-clock time
and on SSIM to the photo. The optimisation is the quality a feed-forward model approximates, so
the ratio of totals says how close the model gets and the speed-up what it buys; the steps to
match, how many optimisation steps the one pass of the network is worth.

A model of several styles is scored in each of them (or the one `--style` names), each on its own
loss: its painting, size and weights. `gatys_steps=0` skips the optimisation: the model's own
losses only, which is all a comparison of two trained models needs.

Writes `report.json`, `report.md` and `grid.png` (rows: content | optimisation | model; with
several styles, the content row then optimisation and model rows per style).
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

from stylenet.checkpoint import styles_of
from stylenet.config_files import default_loss, style_config
from stylenet.errors import ConfigError, StylenetError
from stylenet.evaluate_reference import check_settings, file_sha256, load_reference, optimisation_rows
from stylenet.evaluate_report import WEIGHT_KEYS, markdown, steps_to_match_text
from stylenet.imageio import UnreadableImageError, list_images, open_rgb
from stylenet.inference.model import Stylizer, load_model, resolve_device
from stylenet.losses.perceptual import PerceptualLoss, build_perceptual_loss
from stylenet.losses.vgg import NAMED_WEIGHTS, check_weights
from stylenet.optimize import DEFAULT_LR, METHODS, optimize
from stylenet.pretrained import resolve
from stylenet.styles import find_style_image, load_style_image

DEFAULT_STYLE_SIZE = 512
# Each style of a multi-style model is scored on the painting it trained on, so no other will do.
SEVERAL_STYLES_REMEDY = "where a model of several styles looks for the paintings it trained on"
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


def loss_definition(metadata: dict[str, Any], vgg_weights: str | None) -> tuple[dict[str, Any], bool]:
    """The model's training loss definition (or the defaults) and whether the defaults were used."""
    stored = metadata.get("loss")
    known = set(inspect.signature(build_perceptual_loss).parameters) - {"style_image"}
    # Models whose metadata predates the stored loss definition get the configured defaults.
    # `_target_` (Hydra's) and any future keys are dropped: only build_perceptual_loss's arguments count.
    loss_config = {k: v for k, v in (stored or default_loss()).items() if k in known}
    # Scoring photos never uses the temporal term, whose weight may be one per style by name.
    loss_config.pop("temporal_weight", None)
    if vgg_weights is not None:
        loss_config["vgg_weights"] = vgg_weights
    else:
        _check_recorded_weights(str(loss_config.get("vgg_weights", "caffe")))
    return loss_config, not stored


def _check_recorded_weights(weights: str) -> None:
    """One line for VGG weights the model's loss names that cannot be used here, in evaluate's terms: a
    model trained on a weights file of another machine is scored with `--vgg-weights`, not loss.vgg_weights."""
    if weights not in NAMED_WEIGHTS and not Path(weights).expanduser().is_file():
        raise ConfigError(
            f"the model was trained with the VGG19 weights file {weights}, which is not here: "
            "give it with --vgg-weights PATH, or score with --vgg-weights caffe"
        )
    check_weights(weights, setting="the model's VGG19 weights ")


def _build_loss(
    metadata: dict[str, Any], style: str | None, vgg_weights: str | None
) -> tuple[PerceptualLoss, dict[str, Any], dict[str, Any], bool]:
    """The model's training loss (or the defaults), its definition, the style and whether defaults were used."""
    loss_config, defaults_used = loss_definition(metadata, vgg_weights)
    style_info, loss_config = _resolve_style(style, metadata, loss_config)
    found = find_style_image(
        str(style_info["image"]),
        remedy="or score against a painting with --style PATH",
        path_remedy="score against another painting with --style PATH",
    )
    style_info["sha256"] = file_sha256(found)
    style_image = load_style_image(str(style_info["image"]), int(style_info["size"]))
    return build_perceptual_loss(style_image, **loss_config), loss_config, style_info, defaults_used


def _styles_to_score(metadata: dict[str, Any], style: str | None) -> list[dict[str, Any]] | None:
    """For a model of several styles, the entries to score (all, or the one `style` names); None for one style.

    Checked before any work: an unknown name, or a painting that cannot be found, is one line."""
    styles = styles_of(metadata)
    if len(styles) < 2:
        return None
    names = [entry["name"] for entry in styles]
    if style is not None and style not in names:
        raise ConfigError(
            f"--style {style}: this model holds {', '.join(names)}; name one of them (each is scored on its own loss)"
        )
    chosen = styles if style is None else [styles[names.index(style)]]
    for entry in chosen:
        if not entry.get("image"):
            raise ConfigError(f"the model's style {entry['name']!r} names no painting, so it has no loss to score")
        find_style_image(str(entry["image"]), remedy=SEVERAL_STYLES_REMEDY)
    return chosen


def style_definition(entry: dict[str, Any], loss_config: dict[str, Any]) -> tuple[dict, dict]:
    """One style's loss as it was trained (its own content/style/tv weights) and its painting (file, size)."""
    weights = {k: float(entry[k]) for k in WEIGHT_KEYS if entry.get(k) is not None}
    size = entry.get("size") or DEFAULT_STYLE_SIZE
    image = str(entry["image"])
    info = {"name": entry["name"], "image": image, "size": size, "source": "model"}
    return {**loss_config, **weights}, info | {"sha256": file_sha256(find_style_image(image, SEVERAL_STYLES_REMEDY))}


def _defined_loss(config: dict[str, Any], info: dict[str, Any]) -> PerceptualLoss:
    """The loss `style_definition` describes, built: its painting loaded at its size."""
    return build_perceptual_loss(load_style_image(info["image"], int(info["size"])), **config)


def style_loss(entry: dict[str, Any], loss_config: dict[str, Any]) -> tuple[PerceptualLoss, dict, dict]:
    """One style's loss as it was trained: its painting at its size, its own content/style/tv weights."""
    config, info = style_definition(entry, loss_config)
    return _defined_loss(config, info), config, info


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


def _loss_values(loss: PerceptualLoss, output: torch.Tensor, content: torch.Tensor) -> dict[str, Any]:
    """The weighted terms and total, and each style layer's unweighted relative error (`style_layers`)."""
    with torch.no_grad():
        terms, errors = loss.terms_and_style_errors(output, content)
        values: dict[str, Any] = {k: float(v) for k, v in terms.as_dict().items()}
        values["style_layers"] = {k: float(v.mean()) for k, v in errors.items()}
    return values


def _mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Field-by-field mean of per-image results (nested dicts averaged recursively); steps to match are
    not averaged (`_summary` finds the mean's own)."""
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


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
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


def _score(
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


def check_photo_options(photos: Path, size: int, gatys_steps: int, method: str) -> None:
    """One line for a photo folder or option that `evaluate` cannot use, before any work."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if size < 8:
        raise ConfigError(f"--size must be at least 8 pixels, not {size}")
    if gatys_steps < 0:
        raise ConfigError(f"--gatys-steps must be 0 or more, not {gatys_steps}")
    if not photos.is_dir():
        raise StylenetError(f"{photos}: no such photos folder")


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
    reference: str | Path | None = None,
) -> dict[str, Any]:
    """Compare `model` with Gatys-style optimisation on the photos in `photos`; write reports to `out_dir`.

    `reference`: an earlier report (or its folder) whose optimisation results are reused instead of
    run again, where its loss, paintings, photos and settings are the same (`evaluate_reference`).
    Returns the report written to `out_dir/report.json`.
    """
    photos, out_dir = Path(photos), Path(out_dir)
    check_photo_options(photos, size, gatys_steps, method)
    optimiser = {"gatys_steps": gatys_steps, "method": method, "lr": DEFAULT_LR[method], "size": size, "seed": seed}
    if reference is not None:
        reference_file, earlier = load_reference(reference)
        check_settings(reference_file, earlier, optimiser)
    torch.manual_seed(seed)
    target = resolve_device(device)
    # A shipped style's name ("wave") is the shipped model scored in that style alone.
    resolved = resolve(model, style)
    style = resolved.style
    stylizer = load_model(resolved.path, device=device, precision="fp32")  # the model itself, not a fast path
    several = _styles_to_score(stylizer.metadata, style)
    contents, skipped = load_photos(photos, size, target)
    hashes = {name: file_sha256(photos / name) for name, _ in contents}

    def reused(style_info: dict[str, Any], config: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
        return None if reference is None else optimisation_rows(reference_file, earlier, style_info, config, hashes)

    grid = [content[0].cpu() for _, content in contents]
    if several is None:
        loss, loss_config, style_info, defaults_used = _build_loss(stylizer.metadata, style, vgg_weights)
        from_reference = reused(style_info, loss_config)
        images, optimised, outputs = _score(
            stylizer, loss.to(target), contents, gatys_steps, method, seed, target, hashes, from_reference
        )
        grid += optimised + outputs
        described: dict[str, Any] = {"style": style_info}
        report: dict[str, Any] = {"images": images, "mean": _summary(images)}
    else:
        loss_config, defaults_used = loss_definition(stylizer.metadata, vgg_weights)
        definitions = [style_definition(entry, loss_config) for entry in several]
        # Every style's reference results are found before any style is scored: a mismatch stops the run at once.
        from_reference = [reused(info, config) for config, info in definitions]
        scored = []
        for (config, info), style_reused in zip(definitions, from_reference, strict=True):
            torch.manual_seed(seed)  # every style's loss network alike (it matters for random VGG weights)
            rows, optimised, outputs = _score(
                stylizer.with_style(info["name"]),
                _defined_loss(config, info).to(target),
                contents,
                gatys_steps,
                method,
                seed,
                target,
                hashes,
                style_reused,
            )
            grid += optimised + outputs
            scored.append({"style": info, "loss": config, "images": rows, "mean": _summary(rows)})
        described = {"styles": [s["style"] for s in scored]}
        loss_config = {k: v for k, v in loss_config.items() if k not in WEIGHT_KEYS}  # each style has its own
        report = {"styles": scored, "mean": _summary([s["mean"] for s in scored]), "photos": [n for n, _ in contents]}
    settings = {"model": str(model), **described, "loss": loss_config, "loss_defaults_used": defaults_used}
    settings |= optimiser | {"reference": None if reference is None else str(reference_file)}
    report = {"settings": settings | {"vgg_weights": loss_config.get("vgg_weights"), "device": str(target)}, **report}
    notes = [LPIPS_NOTE]
    if defaults_used:
        notes.append("the model's metadata holds no loss definition; the project's default loss was used")
    if not gatys_steps:
        notes.append("--gatys-steps 0: no optimisation reference was run, so there are no ratios or speed-ups")
    if reference is not None:
        notes.append(
            f"the optimisation results are those of {reference_file} (same loss, paintings, photos and settings), "
            "not run again: their seconds, and so the speed-ups, are from that run's machine, and grid.png has "
            "no optimisation rows"
        )
    report |= {"skipped": skipped, "skipped_count": len(skipped), "lpips": None, "notes": notes}
    if not all(math.isfinite(v) for v in _numbers(report["mean"])):
        notes.append("some values are not finite (diverged optimisation or degenerate loss)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown(report))
    # make_grid fills rows of `nrow` images: one row per kind (and style), one column per photo.
    save_image(make_grid(grid, nrow=len(contents), padding=2), out_dir / "grid.png")
    return report


def _run_video(args: argparse.Namespace, out_dir: Path) -> None:
    from stylenet.stability.run import evaluate_video

    report = evaluate_video(
        args.model,
        args.video,
        out_dir,
        baseline=args.baseline,
        style=args.style,
        frames=args.frames,
        device=args.device,
        size=args.video_size,
    )
    for clip in report["clips"]:
        errors = clip["warping_error_by_model"]
        figures = ", ".join(f"{name} {value:.5f}" for name, value in errors.items())
        print(f"{clip['clip']}: warping error {figures}")
    print(f"wrote {out_dir / 'video_report.md'}")


def _numbers(tree: Any) -> list[float]:
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in _numbers(value)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def _check_report_folder(args: argparse.Namespace, out_dir: Path) -> None:
    """Refuses, before any work, an `out_dir` that is a file and (without --overwrite) a report already in it."""
    from stylenet.inference.runner import check_folder, refuse_existing

    check_folder(out_dir, out_dir)
    reports = [out_dir / name for name in ("report.json", "report.md", "grid.png")] if args.photos else []
    if args.video:
        reports += [out_dir / name for name in ("video_report.json", "video_report.md")]
        reports += [out_dir / f"video_{Path(clip).stem}.png" for clip in args.video]
    if not getattr(args, "overwrite", False):
        refuse_existing(reports)


def run(args: argparse.Namespace) -> int:
    """Run `evaluate` for parsed arguments; print where the report is. StylenetError propagates to main."""
    out_dir = args.output or Path("evaluation") / Path(args.model).stem
    if args.photos is None and not args.video:
        raise ConfigError("name what to evaluate on: --photos FOLDER, --video CLIP..., or both")
    if args.baseline is not None and not args.video:
        raise ConfigError("--baseline compares warping errors: it needs --video CLIP")
    resolve_device(args.device, "--device ")  # as typed; evaluate()'s own check speaks of device=
    if args.vgg_weights is not None:
        check_weights(args.vgg_weights, setting="--vgg-weights ")
    if args.photos is not None:  # found now, not after the clips have been measured
        check_photo_options(args.photos, args.size, args.gatys_steps, args.method)
    _check_report_folder(args, out_dir)
    if args.video:
        _run_video(args, out_dir)
    if args.photos is None:
        return 0
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
        reference=args.reference,
    )
    mean = report["mean"]
    photos = len(report["images"]) if "images" in report else len(report["photos"])
    scored = f"{photos} photo(s)" + (f" x {len(report['styles'])} styles" if "styles" in report else "")
    figures = (
        f"model/optimisation total loss {mean['ratio_total']:.3f}, speed-up {mean['speedup']:.0f}x"
        if "ratio_total" in mean
        else f"model total loss {mean['model']['total_loss']:.4g}"
    )
    if "steps_to_match" in mean:
        figures += f"; the optimisation reaches the model's loss in {steps_to_match_text(mean)} steps"
    print(f"wrote {out_dir / 'report.md'}: {scored}, {report['skipped_count']} skipped; {figures}")
    return 0
