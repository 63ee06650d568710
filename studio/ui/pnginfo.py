"""PNG Info: drop a PNG, read its parameters, send them to a generation tab."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.ui.context import UiContext
from studio.ui.errors import user_errors


@dataclass
class PngInfoTab:
    path: gr.State  # the dropped file
    fields: gr.State  # request fields read from it
    buttons: dict[str, gr.Button]  # "Send to <tab>" by tab name


def build_pnginfo_tab(ctx: UiContext) -> PngInfoTab:
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Source", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                             elem_id="pnginfo_image")
        with gr.Column():
            parameters = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo_parameters")
            with gr.Row():
                buttons = {name: gr.Button(f"Send to {name}", elem_id=f"pnginfo_send_{name}")
                           for name in ("txt2img", "img2img", "inpaint")}
            other = gr.JSON(label="Other chunks", elem_id="pnginfo_chunks")
    fields = gr.State({})

    def read(path: str | None) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
        if not path:
            return "", {}, {}, None
        with user_errors(ctx.error_types):
            info = ctx.read_png(Path(path))
        if not info["infotext"] and not info["fields"]:
            gr.Info("This image carries no generation parameters.")
        chunks = {k: v for k, v in info["chunks"].items() if k not in ("parameters", "studio")}
        if info["recipe"] is not None:
            chunks["studio recipe"] = info["recipe"]
        return info["infotext"], chunks, info["fields"], path

    state_path = gr.State(None)
    image.change(read, inputs=image, outputs=[parameters, other, fields, state_path], queue=False)
    return PngInfoTab(state_path, fields, buttons)
