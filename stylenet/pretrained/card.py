"""The model card stored inside a shipped model: what it was trained on and how well it does.

Built by `scripts/pack_pretrained.py` from three sources: the checkpoint's metadata (styles, steps,
loss weights), a card YAML for what a checkpoint cannot know (the paintings' sources, the training
photos, the command) and, where given, `stylenet evaluate`'s report.json. A plain dict of strings,
numbers and lists, so `torch.load(weights_only=True)` reads it.
"""

from __future__ import annotations

from typing import Any

from stylenet.checkpoint import styles_of
from stylenet.errors import ConfigError

PLACEHOLDER = "TODO"
NOT_EVALUATED = "not evaluated"
NOT_RECORDED = "not recorded"
NOT_RUN = "not run"
PAINTING_KEYS = ("title", "artist", "year", "image_source", "licence")
WEIGHTS = {"content": "content_weight", "style": "style_weight", "tv": "tv_weight"}


def placeholders(tree: Any, where: str = "") -> list[str]:
    """The keys of `tree` still holding a TODO placeholder (a card may not be packed with any)."""
    if isinstance(tree, dict):
        return [p for key, value in tree.items() for p in placeholders(value, f"{where}.{key}" if where else key)]
    if isinstance(tree, list):
        return [p for i, value in enumerate(tree) for p in placeholders(value, f"{where}[{i}]")]
    return [where] if isinstance(tree, str) and PLACEHOLDER in tree else []


def _loss_weights(style: dict[str, Any], loss: dict[str, Any]) -> dict[str, Any]:
    """A style's own weights, else the model's loss definition's, else "not recorded"."""
    return {short: style.get(key, loss.get(key, NOT_RECORDED)) for short, key in WEIGHTS.items()}


def _scores(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per style name, the report's mean figures: the model's and the optimisation's total loss and SSIM."""
    if report is None:
        return {}
    if "styles" in report:
        entries = [(s["style"]["name"], s["mean"]) for s in report["styles"]]
    else:
        entries = [(report["settings"]["style"]["name"], report["mean"])]
    scores = {}
    for name, mean in entries:
        optimised = mean.get("optimisation") or {}
        scores[name] = {
            "model_total_loss": mean["model"]["total_loss"],
            "optimisation_total_loss": optimised.get("total_loss", NOT_RUN),
            "ratio_total": mean.get("ratio_total", NOT_RUN),
            "model_ssim": mean["model"]["ssim"],
            "optimisation_ssim": optimised.get("ssim", NOT_RUN),
        }
    return scores


def _evaluation(report: dict[str, Any] | None) -> dict[str, Any] | str:
    if report is None:
        return NOT_EVALUATED
    settings = report.get("settings", {})
    photos = report.get("photos") or [row["photo"] for row in report.get("images", [])]
    kept = ("gatys_steps", "method", "size", "seed", "vgg_weights")
    return {"photos": list(photos), **{key: settings[key] for key in kept if key in settings}}


def build_card(metadata: dict[str, Any], given: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
    """The card of the model with `metadata`, from the card YAML `given` and an evaluation `report` (or None).

    One ConfigError line for a placeholder left in `given`, a style it does not describe, or a report of
    other styles."""
    left = placeholders(given)
    if left:
        raise ConfigError(f"the card still has placeholders to fill ({PLACEHOLDER}): {', '.join(left)}")
    styles = styles_of(metadata)
    names = [style["name"] for style in styles]
    paintings = given.get("paintings") or {}
    missing = [name for name in names if name not in paintings]
    if missing or set(paintings) - set(names):
        raise ConfigError(
            f"the card's paintings ({', '.join(paintings)}) must be the model's styles ({', '.join(names)})"
        )
    scores = _scores(report)
    unknown = sorted(set(scores) - set(names))
    if unknown:
        raise ConfigError(f"the report scores {', '.join(unknown)}, which the model does not hold: another model's?")
    loss = metadata.get("loss") or {}
    training = dict(given.get("training") or {})
    photos = training.get("photos")
    if isinstance(photos, dict):
        photos = {key: photos.get(key, NOT_RECORDED) for key in ("count", "names", "source", "held_out")}
    return {
        "name": str(given.get("name", "")),
        "note": str(given.get("note", "")),
        "weights": "float16",
        "styles": [
            {
                "name": style["name"],
                "painting": {key: paintings[style["name"]].get(key, NOT_RECORDED) for key in PAINTING_KEYS},
                "style_image_size": style.get("size", NOT_RECORDED),
                "loss_weights": _loss_weights(style, loss),
                "evaluation": scores.get(style["name"], NOT_EVALUATED),
            }
            for style in styles
        ],
        "training": {
            "steps": metadata.get("steps", NOT_RECORDED),
            "image_size": training.get("image_size", NOT_RECORDED),
            "photos": photos or NOT_RECORDED,
            "command": training.get("command", NOT_RECORDED),
        },
        "loss": {key: value for key, value in loss.items() if not key.startswith("_")} or NOT_RECORDED,
        "evaluation": _evaluation(report),
    }


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def one_line(card: dict[str, Any], name: str) -> str:
    """A style's card in a line: the painting, the training steps and the evaluation's headline."""
    style = next((s for s in card.get("styles", []) if s.get("name") == name), None)
    if style is None:
        return "no card"
    painting = style["painting"]
    scored = style["evaluation"]
    figures = (
        NOT_EVALUATED
        if not isinstance(scored, dict)
        else f"model total loss {_number(scored['model_total_loss'])}, "
        f"{_number(scored['ratio_total'])}x the optimisation's"
        if scored["ratio_total"] != NOT_RUN
        else f"model total loss {_number(scored['model_total_loss'])}"
    )
    steps = card.get("training", {}).get("steps", NOT_RECORDED)
    return f"{painting['artist']}, {painting['title']} ({painting['year']}); {steps} steps; {figures}"


def markdown(card: dict[str, Any]) -> str:
    """The card as a Markdown section (docs/models.md is generated from it)."""
    training = card["training"]
    photos = training["photos"] if isinstance(training["photos"], dict) else {}
    lines = [f"## {card['name']}", ""] + ([card["note"], ""] if card.get("note") else [])
    lines += [
        "| style | painting | image source | style size | loss weights (content, style, TV) | model total loss "
        "| optimisation total loss | ratio | SSIM model | SSIM optimisation |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for style in card["styles"]:
        p, w, e = style["painting"], style["loss_weights"], style["evaluation"]
        figures = (
            [e[k] for k in ("model_total_loss", "optimisation_total_loss", "ratio_total", "model_ssim")]
            + [e["optimisation_ssim"]]
            if isinstance(e, dict)
            else [e] * 5
        )
        lines.append(
            f"| {style['name']} | {p['artist']}, *{p['title']}* ({p['year']}), {p['licence']} | {p['image_source']} "
            f"| {style['style_image_size']} | {_number(w['content'])}, {_number(w['style'])}, {_number(w['tv'])} | "
            + " | ".join(_number(v) for v in figures)
            + " |"
        )
    evaluation = card["evaluation"]
    size = training["image_size"]
    size = f"{size} px crops" if isinstance(size, int) else f"crop size {size}"
    lines += ["", f"- Weights: {card['weights']}.", f"- Training: {training['steps']} steps, {size}."]
    if photos:
        names = photos.get("names")
        listed = ", ".join(names) if isinstance(names, list) else str(names)
        lines.append(f"- Training photos: {photos.get('count')} ({photos.get('source')}): {listed}.")
        if isinstance(photos.get("held_out"), list):
            lines.append(f"- Held out of training: {', '.join(photos['held_out'])}.")
    else:
        lines.append(f"- Training photos: {training['photos']}.")
    if isinstance(evaluation, dict):
        settings = ", ".join(f"{k} {v}" for k, v in evaluation.items() if k != "photos")
        lines.append(f"- Evaluated on {', '.join(evaluation['photos'])} ({settings}).")
    else:
        lines.append(f"- Evaluation: {evaluation}.")
    command = training["command"]
    lines += [f"- Reproduce: {command}" if command == NOT_RECORDED else f"- Reproduce:\n\n```\n{command}\n```", ""]
    return "\n".join(lines)
