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
import json
import math
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image

from stylenet.errors import ConfigError, StylenetError
from stylenet.evaluate_loss import build_loss, defined_loss, loss_definition, style_definition, styles_to_score
from stylenet.evaluate_reference import check_settings, file_sha256, load_reference, optimisation_rows
from stylenet.evaluate_report import WEIGHT_KEYS, markdown, steps_to_match_text
from stylenet.evaluate_scoring import load_photos, score, summary
from stylenet.inference.memory import available_memory, format_size
from stylenet.inference.model import load_model, resolve_device
from stylenet.losses.vgg import PASS_BYTES_PER_PIXEL, check_weights
from stylenet.optimize import DEFAULT_LR, METHODS
from stylenet.pretrained import resolve

LPIPS_NOTE = (
    "LPIPS not computed: it needs pretrained network weights downloaded at run time (lpips package / "
    "torchvision), which this offline evaluation does not fetch; SSIM to the content photo is reported instead."
)


def check_photo_options(photos: Path, size: int, gatys_steps: int, method: str, device: str = "cpu") -> None:
    """One line for a photo folder or option that `evaluate` cannot use, before any work."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if size < 8:
        raise ConfigError(f"--size must be at least 8 pixels, not {size}")
    if gatys_steps < 0:
        raise ConfigError(f"--gatys-steps must be 0 or more, not {gatys_steps}")
    if photos.exists() and not photos.is_dir():
        raise StylenetError(f"--photos {photos} is a file; --photos takes a folder of photos")
    if not photos.is_dir():
        raise StylenetError(f"{photos}: no such photos folder")
    free = available_memory(resolve_device(device))
    need = size * size * PASS_BYTES_PER_PIXEL  # a lower bound: the loss network's pass alone, no gradients
    if free is not None and need > free:
        raise ConfigError(
            f"--size {size}: scoring a photo at {size}x{size} px needs at least {format_size(need)}, over the "
            f"{format_size(free)} free; use a smaller --size (256 is the usual)"
        )


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
    check_photo_options(photos, size, gatys_steps, method, device)
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
    several = styles_to_score(stylizer.metadata, style)
    contents, skipped = load_photos(photos, size, target)
    hashes = {name: file_sha256(photos / name) for name, _ in contents}

    def reused(style_info: dict[str, Any], config: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
        return None if reference is None else optimisation_rows(reference_file, earlier, style_info, config, hashes)

    grid = [content[0].cpu() for _, content in contents]
    if several is None:
        loss, loss_config, style_info, defaults_used = build_loss(stylizer.metadata, style, vgg_weights)
        from_reference = reused(style_info, loss_config)
        images, optimised, outputs = score(
            stylizer, loss.to(target), contents, gatys_steps, method, seed, target, hashes, from_reference
        )
        grid += optimised + outputs
        described: dict[str, Any] = {"style": style_info}
        report: dict[str, Any] = {"images": images, "mean": summary(images)}
    else:
        loss_config, defaults_used = loss_definition(stylizer.metadata, vgg_weights)
        definitions = [style_definition(entry, loss_config) for entry in several]
        # Every style's reference results are found before any style is scored: a mismatch stops the run at once.
        from_reference = [reused(info, config) for config, info in definitions]
        scored = []
        for (config, info), style_reused in zip(definitions, from_reference, strict=True):
            torch.manual_seed(seed)  # every style's loss network alike (it matters for random VGG weights)
            rows, optimised, outputs = score(
                stylizer.with_style(info["name"]),
                defined_loss(config, info).to(target),
                contents,
                gatys_steps,
                method,
                seed,
                target,
                hashes,
                style_reused,
            )
            grid += optimised + outputs
            scored.append({"style": info, "loss": config, "images": rows, "mean": summary(rows)})
        described = {"styles": [s["style"] for s in scored]}
        loss_config = {k: v for k, v in loss_config.items() if k not in WEIGHT_KEYS}  # each style has its own
        report = {"styles": scored, "mean": summary([s["mean"] for s in scored]), "photos": [n for n, _ in contents]}
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
        check_photo_options(args.photos, args.size, args.gatys_steps, args.method, args.device)
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
