"""PNG Info: drop a PNG, read its parameters, send them to a generation tab."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio import processing_utils

from studio.ui.errors import USER_ERRORS, user_errors
from studio.ui.images import image_input, unreadable_image
from studio.ui.sharing import user_of

if TYPE_CHECKING:
    from studio.service.generation_base import GenerationService
    from studio.service.outputs import OutputService


@dataclass
class PngInfoTab:
    path: gr.State  # the dropped file
    fields: gr.State  # request fields read from it
    buttons: dict[str, gr.Button]  # "Send to <tab>" by tab name
    load: Any = None  # (fn, inputs, outputs) to run when the page loads, if any


def build_pnginfo_tab(outputs: "OutputService", generation: "GenerationService") -> PngInfoTab:
    with gr.Row():
        with gr.Column():
            image = image_input(label="Source", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                             elem_id="pnginfo_image")
        with gr.Column():
            parameters = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo_parameters")
            with gr.Row():
                buttons = {name: gr.Button(f"Send to {name}", elem_id=f"pnginfo_send_{name}")
                           for name in ("txt2img", "img2img", "inpaint")}
            with gr.Row():
                reproduce = gr.Button("Reproduce", variant="primary", elem_id="pnginfo_reproduce")
            warnings = gr.Markdown(elem_id="pnginfo_warnings")
            reproduced = gr.Image(label="Reproduced", type="filepath", interactive=False, format="png",
                                  elem_id="pnginfo_reproduced", height=200)
            other = gr.JSON(label="Other chunks", elem_id="pnginfo_chunks")
    fields = gr.State({})

    def read(upload: dict[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, Any], str | None, str]:
        # Unprocessed upload: a file that is not an image is a sentence here, not Gradio's error badges.
        path = (upload or {}).get("path")
        if not path:
            return "", {}, {}, None, ""
        if not uploaded(upload):  # an unprocessed payload can name any server path: only uploads are read
            return "", {}, {}, None, "⚠️ Upload the PNG (only uploaded files are read here)."
        problem = unreadable_image(path, upload.get("orig_name") or Path(path).name)
        if problem is None:
            try:
                info = outputs.read_png(Path(path))
                warnings = _warning_text(generation.reproduce_warnings(Path(path)))
            except USER_ERRORS as error:
                problem = str(error)
        if problem is not None:
            return "", {}, {}, None, f"⚠️ {problem}"
        if not info["infotext"] and not info["fields"]:
            gr.Info("This image carries no generation parameters.")
        for warning in info.get("warnings", ()):
            gr.Warning(warning)
        chunks = {k: v for k, v in info["chunks"].items() if k not in ("parameters", "studio")}
        if info["recipe"] is not None:
            chunks["studio recipe"] = info["recipe"]
        return info["infotext"], chunks, info["fields"], path, warnings

    state_path = gr.State(None)
    image.change(read, inputs=image, outputs=[parameters, other, fields, state_path, warnings], queue=False,
                 preprocess=False)

    def run_reproduce(path: str | None, http: gr.Request) -> tuple[str | None, str]:
        if not path:
            raise gr.Error("Drop a PNG made by this studio first.", print_exception=False)
        with user_errors():
            output, _, notes = generation.reproduce(Path(path), user_of(http))
        return output, _warning_text(notes) or "Reproduced: compare it with the source image."

    reproduce.click(run_reproduce, inputs=state_path, outputs=[reproduced, warnings],
                    concurrency_id="generation", concurrency_limit=1)
    return PngInfoTab(state_path, fields, buttons)


def uploaded(upload: dict[str, Any]) -> bool:
    """The payload names a file in Gradio's upload folder (Gradio's own check), not any other path."""
    try:
        processing_utils.check_all_files_in_cache(upload)
    except gr.Error:
        return False
    return True


def _warning_text(warnings: list[str]) -> str:
    return "\n".join(f"⚠️ {warning}" for warning in warnings)
