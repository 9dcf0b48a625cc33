"""The page: a model and its blend, the shared controls, then a tab each for a photo, a video and the webcam."""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from stylenet.app.handlers import Handlers

# Every event that runs a model shares one queue slot: requests wait their turn instead of
# competing for the same cores (or GPU memory) and slowing each other down.
RUN = "run-model"
# System fonts: the default theme fetches its fonts from the internet, which a local tool must not need.
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "monospace"]


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=FONTS, font_mono=MONO)


def _picture(label: str, elem_id: str) -> gr.Image:
    """An image shown on the page (PNG, lossless), to look at or download, not to edit."""
    return gr.Image(label=label, format="png", interactive=False, buttons=["download", "fullscreen"], elem_id=elem_id)


def _plain(text: str) -> str:
    """`text` shown as typed in Markdown: an underscore in a file name must not start italics."""
    return re.sub(r"([\\`*_\[\]<>#|~$])", r"\\\1", text)


def build(handlers: Handlers) -> gr.Blocks:
    catalog = handlers.catalog
    first = catalog.first_usable()  # one that fails to load is dropped here, not met in a traceback
    with gr.Blocks(title="stylenet", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("## stylenet: feed-forward style transfer")
        if catalog.notes:
            lines = (f"- {_plain(catalog.for_page(note))}" for note in catalog.notes)
            gr.Markdown("**Note**\n\n" + "\n".join(lines), elem_id="note")
        with gr.Row():
            model = gr.Dropdown(catalog.names, value=first, label="Model", elem_id="model")
            size = gr.Number(
                value=0, precision=0, minimum=0, label="Output size (longest side, px; 0: as uploaded)", elem_id="size"
            )
            strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength", elem_id="strength")
            keep_color = gr.Checkbox(label="Keep colours", elem_id="keep-color")
        with gr.Row():
            initial = handlers.slider_updates(first)
            sliders = [
                gr.Slider(0, 1, step=0.05, label=u["label"] or f"style {i + 1}", value=u["value"], visible=u["visible"])
                for i, u in enumerate(initial)
            ]
        controls = [size, strength, keep_color, *sliders]
        with gr.Tab("Photo"):
            with gr.Row():
                photo = gr.File(label="Photo (upload or drop)", file_types=["image"], elem_id="photo")
                run_photo = gr.Button("Stylize", variant="primary", elem_id="run-photo")
            with gr.Row():
                original = _picture("Original", "original")
                result = _picture("Stylized", "result")
            download = gr.File(label="Stylized, full resolution", interactive=False, elem_id="download")
        with gr.Tab("Video"):
            with gr.Row():
                clip = gr.Video(label="Video (a short clip)", sources=["upload"], elem_id="clip")
                clip_out = gr.Video(label="Stylized", interactive=False, elem_id="clip-out")
            run_clip = gr.Button("Stylize video", variant="primary", elem_id="run-clip")
        with gr.Tab("Webcam"):
            with gr.Row():
                camera = gr.Image(label="Webcam", sources=["webcam"], streaming=True, elem_id="camera")
                camera_out = gr.Image(label="Stylized", interactive=False, elem_id="camera-out")

        def stylize_video(name, upload, size, strength, keep_color, progress=gr.Progress(), *weights) -> Any:  # noqa: B008
            # Gradio finds gr.Progress by its default, among the positional parameters only.
            return handlers.video(name, upload, size, strength, keep_color, *weights, progress=progress)

        model.change(handlers.slider_updates, model, sliders, api_name="sliders")
        run = {"concurrency_id": RUN, "concurrency_limit": 1}
        run_photo.click(
            handlers.photo, [model, photo, *controls], [original, result, download], api_name="photo", **run
        )
        run_clip.click(stylize_video, [model, clip, *controls], clip_out, api_name="video", **run)
        camera.stream(
            handlers.webcam, [camera, model, *controls], camera_out, api_name="webcam", stream_every=0.2, **run
        )
    return page
