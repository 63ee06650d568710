"""Width/height that follow the loaded model: aspect-ratio buttons, and the model switch.

A tab's size follows the model (its default size at the tab's last aspect ratio) until the user
changes it: at a switch, a tab whose width and height are still what the previous model's default
gave them gets the new model's; a size the user typed, dragged or sent from a PNG stays.
"""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from studio.checkpoints.sizes import ASPECT_RATIOS, SQUARE, size_for


def build_aspect_buttons(name: str, width: gr.Slider, height: gr.Slider, native: Callable[[], int]) -> gr.State:
    """A row of ratio buttons that set the size for the loaded model; the State holds the last ratio."""
    ratio = gr.State(SQUARE)
    with gr.Row(elem_id=f"{name}_aspect_ratios", equal_height=True):
        for label in ASPECT_RATIOS:
            button = gr.Button(label, size="sm", min_width=40, elem_id=f"{name}_aspect_{label.replace(':', 'x')}")

            def pick(chosen: str = label) -> tuple[int, int, str]:
                return (*size_for(native(), chosen), chosen)

            button.click(pick, outputs=[width, height, ratio], queue=False, show_progress="hidden")
    return ratio


def follow_model(before: int, after: int, width: Any, height: Any, ratio: str) -> tuple[Any, Any]:
    """The tab's new (width, height) after the model's default size went from `before` to `after`
    (gr.update() for a size the user chose)."""
    ratio = ratio if ratio in ASPECT_RATIOS else SQUARE
    try:
        current = (int(float(width)), int(float(height)))
    except (TypeError, ValueError):
        return gr.update(), gr.update()
    if current != size_for(before, ratio):
        return gr.update(), gr.update()
    return size_for(after, ratio)
