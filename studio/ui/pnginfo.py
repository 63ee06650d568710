"""PNG Info: drop a PNG, read its parameters, send them to a generation tab."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gradio as gr

from studio.ui.context import UiContext
from studio.ui.errors import user_errors
from studio.ui.forms import RequestForm


def build_pnginfo_tab(ctx: UiContext) -> tuple[gr.Button, gr.State]:
    """Returns the "Send to txt2img" button and the state holding the parsed request fields."""
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Source", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                             elem_id="pnginfo_image")
        with gr.Column():
            parameters = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo_parameters")
            other = gr.JSON(label="Other chunks", elem_id="pnginfo_chunks")
            send = gr.Button("Send to txt2img", elem_id="pnginfo_send_txt2img")
    fields = gr.State({})

    def read(path: str | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        if not path:
            return "", {}, {}
        with user_errors(ctx.error_types):
            info = ctx.read_png(Path(path))
        if not info["infotext"] and not info["fields"]:
            gr.Info("This image carries no generation parameters.")
        other = {k: v for k, v in info["chunks"].items() if k not in ("parameters", "studio")}
        if info["recipe"] is not None:
            other["studio recipe"] = info["recipe"]
        return info["infotext"], other, info["fields"]

    image.change(read, inputs=image, outputs=[parameters, other, fields], queue=False)
    return send, fields


def wire_send(send: gr.Button, fields: gr.State, form: RequestForm, tabs: gr.Tabs, tab_id: str,
              prepare: Callable[[dict[str, Any]], dict[str, Any]] = lambda f: f) -> None:
    """Clicking `send` fills every widget of `form` the fields name and switches to the tab."""
    outputs = [*form.widgets.values(), tabs]

    def fill(values: dict[str, Any]) -> dict[Any, Any]:
        if not values:
            raise gr.Error("Drop a PNG with generation parameters first.", print_exception=False)
        updates = form.fill(prepare(values))
        updates[tabs] = gr.Tabs(selected=tab_id)
        return updates

    send.click(fill, inputs=fields, outputs=outputs, queue=False)
