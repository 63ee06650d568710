"""img2img and inpaint sources: the widgets those modes add to the generation tab."""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from studio.request import INPAINTING_FILLS, MAX_OUTPAINT, OUTPAINT_FILLS, RESIZE_MODES, GenerationRequest
from studio.ui.generation import ModeSource
from studio.ui.images import image_editor_input, image_input

DEFAULTS = GenerationRequest()
INPAINT_AREAS = ("Whole picture", "Only masked")
# The mask brush: half-transparent magenta shows on white, black and photos alike (any painted
# alpha is mask, whatever the colour).
MASK_COLOUR = "rgba(255, 0, 200, 0.6)"


def img2img_source() -> ModeSource:
    init = image_input(label="Source image", type="pil", image_mode="RGB", sources=["upload", "clipboard"],
                    format="png", elem_id="img2img_image", height=320)
    resize = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], type="index", label="Resize mode",
                      elem_id="img2img_resize_mode")
    return ModeSource(widgets={"init_image": init, "resize_mode": resize, **outpaint_widgets("img2img")},
                      named={"image": init}, missing_image="img2img needs a source image: upload one first.")


def outpaint_widgets(name: str) -> dict[str, gr.components.Component]:
    """Outpainting: pixels to add on each side (0: none) and how the new area starts."""
    with gr.Accordion("Outpainting", open=False, elem_id=f"{name}_outpaint"):
        with gr.Row():
            sides = {side: gr.Slider(0, MAX_OUTPAINT, value=0, step=8, label=f"Extend {side}, pixels",
                                     elem_id=f"{name}_outpaint_{side}") for side in ("left", "right", "up", "down")}
        fill = gr.Radio(list(OUTPAINT_FILLS), value="fill", type="index", label="New area starts as",
                        elem_id=f"{name}_outpaint_fill")
        gr.Markdown("The new area is repainted (with the *Mask blur* seam for inpaint; 4 px in img2img) at the "
                    "extended canvas's size (Width/Height are not used); the rest of the picture keeps its exact "
                    "pixels. *fill* (A1111's default) starts it from the blurred colours around it.")
    return {**{f"outpaint_{side}": slider for side, slider in sides.items()}, "outpaint_fill": fill}


def mask_from_layers(editor: dict[str, Any] | None) -> Image.Image | None:
    """Everything painted on the editor's layers (any colour, any opacity) is the mask."""
    if not editor or editor.get("background") is None:
        return None
    background = editor["background"]
    mask = np.zeros((background.height, background.width), dtype=bool)
    for layer in editor.get("layers") or []:
        if layer is None:
            continue
        alpha = np.asarray(layer.convert("RGBA").resize(background.size))[..., 3]
        mask |= alpha > 0
    return Image.fromarray((mask * 255).astype(np.uint8), mode="L")


def inpaint_source() -> ModeSource:
    editor = image_editor_input(label="Image — paint the area to repaint", type="pil", image_mode="RGBA",
                            sources=["upload", "clipboard"], format="png", layers=False, transforms=(),
                            brush=gr.Brush(colors=[MASK_COLOUR], default_color=MASK_COLOUR, default_size=6, color_mode="fixed"),
                            elem_id="inpaint_editor", height=360)
    with gr.Accordion("Upload a mask instead", open=False):
        uploaded = image_input(label="Mask (white = repaint)", type="pil", image_mode="L", sources=["upload"],
                            format="png", elem_id="inpaint_mask_upload", height=200)
    invert = gr.Checkbox(label="Invert mask (inpaint not masked)", elem_id="inpaint_invert")
    with gr.Row():
        blur = gr.Slider(0, 64, value=DEFAULTS.mask_blur, step=1, label="Mask blur", elem_id="inpaint_mask_blur")
        padding = gr.Slider(0, 256, value=DEFAULTS.inpaint_full_res_padding, step=4,
                            label="Only masked padding, pixels", elem_id="inpaint_padding")
    fill = gr.Radio(list(INPAINTING_FILLS), value=INPAINTING_FILLS[DEFAULTS.inpainting_fill], type="index",
                    label="Masked content", elem_id="inpaint_fill")
    area = gr.Radio(list(INPAINT_AREAS), value=INPAINT_AREAS[0], label="Inpaint area", elem_id="inpaint_area")
    resize = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], type="index", label="Resize mode",
                      elem_id="inpaint_resize_mode")

    def derive(values: dict[Any, Any]) -> dict[str, Any]:
        state = values.get(editor)
        init = state.get("background") if state else None
        mask = values.get(uploaded) if values.get(uploaded) is not None else mask_from_layers(state)
        return {
            "init_image": init.convert("RGB") if init is not None else None,
            "mask": mask,
            "inpaint_full_res": values.get(area) == INPAINT_AREAS[1],
            "inpainting_mask_invert": bool(values.get(invert)),
        }

    return ModeSource(
        widgets={"mask_blur": blur, "inpaint_full_res_padding": padding, "inpainting_fill": fill, "resize_mode": resize,
                 **outpaint_widgets("inpaint")},
        extra_inputs=[editor, uploaded, area, invert],
        derive=derive,
        named={"image": editor, "mask": uploaded, "area": area, "invert": invert},
        missing_image="Inpaint needs an image: upload one, then paint the area to repaint.",
    )
