"""The "Refiner" accordion (A1111 >= 1.6): an SDXL refiner checkpoint and where it takes over."""
from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from studio.request import GenerationRequest

if TYPE_CHECKING:
    from studio.service.models import ModelService

DEFAULTS = GenerationRequest()
NO_REFINER = ("None", "")


def refiner_choices(models: "ModelService") -> list[tuple[str, str]]:
    return [NO_REFINER, *[(title, title) for title in models.titles()]]


def build_refiner_widgets(models: "ModelService", name: str) -> dict[str, gr.components.Component]:
    """Checkpoint ("None": no refiner) and "Switch at": the fraction of the steps the base model runs."""
    with gr.Accordion("Refiner", open=False, elem_id=f"{name}_refiner"):
        with gr.Row():
            checkpoint = gr.Dropdown(refiner_choices(models), value="", label="Checkpoint", scale=3,
                                     info="an SDXL refiner (or SDXL model) finishing an SDXL base's image",
                                     elem_id=f"{name}_refiner_checkpoint")
            switch = gr.Slider(0.01, 0.99, value=DEFAULTS.refiner_switch_at, step=0.01, label="Switch at", scale=2,
                               info="fraction of the steps the base model runs", elem_id=f"{name}_refiner_switch_at")
    return {"refiner_checkpoint": checkpoint, "refiner_switch_at": switch}
