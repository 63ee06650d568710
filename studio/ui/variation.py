"""A1111's "Extra" seed options: variation seed, its strength, and resize seed from width/height.

Unticking "Extra" turns them off (as in A1111), whatever the hidden sliders hold; a Send-to or
PNG Info paste ticks it when it brings a variation and unticks it when it says plain seeds, so
what is applied is always on screen."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.request import MAX_SEED, MAX_SIZE

OFF = {"subseed_strength": 0.0, "seed_resize_from_w": -1, "seed_resize_from_h": -1}


@dataclass
class VariationControls:
    extra: gr.Checkbox
    widgets: dict[str, gr.components.Component]  # request field -> widget

    def follow(self, fields: dict[str, Any]) -> bool | None:
        """The checkbox after a paste of these fields (see RequestForm's followers): ticked when
        they hold a variation, unticked when they say plain seeds, unchanged when they say nothing."""
        if not any(name in fields for name in OFF):
            return None
        resize = min(fields.get("seed_resize_from_w", -1), fields.get("seed_resize_from_h", -1))
        return fields.get("subseed_strength", 0) > 0 or resize > 0

    def derive(self, values: dict[Any, Any]) -> dict[str, Any]:
        """Request overrides: plain seeds while "Extra" is unticked; 0 in a resize field means off."""
        if not values.get(self.extra):
            return dict(OFF)
        resize = [values.get(self.widgets[name]) or 0 for name in ("seed_resize_from_w", "seed_resize_from_h")]
        return {} if min(resize) > 0 else {"seed_resize_from_w": -1, "seed_resize_from_h": -1}


def build_variation_controls(name: str) -> VariationControls:
    """The checkbox beside the seed and, below it, the group it shows."""
    extra = gr.Checkbox(label="Extra", value=False, elem_id=f"{name}_subseed_show", scale=0, min_width=80)
    return VariationControls(extra, {})


def build_variation_group(name: str, controls: VariationControls) -> None:
    """The hidden row of variation widgets (built after the seed row, so it sits under it)."""
    with gr.Column(visible=False, elem_id=f"{name}_seed_extras") as row:
        with gr.Row():
            subseed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label="Variation seed",
                                elem_id=f"{name}_subseed")
            strength = gr.Slider(0, 1, value=0, step=0.01, label="Variation strength",
                                 elem_id=f"{name}_subseed_strength")
        with gr.Row():
            resize_w = gr.Slider(0, MAX_SIZE, value=0, step=8, label="Resize seed from width",
                                 elem_id=f"{name}_seed_resize_from_w")
            resize_h = gr.Slider(0, MAX_SIZE, value=0, step=8, label="Resize seed from height",
                                 elem_id=f"{name}_seed_resize_from_h")
    controls.widgets.update(subseed=subseed, subseed_strength=strength, seed_resize_from_w=resize_w,
                            seed_resize_from_h=resize_h)
    controls.extra.change(lambda shown: gr.Column(visible=bool(shown)), inputs=controls.extra, outputs=row,
                          queue=False, show_progress="hidden")
