"""The "Refiner" accordion (A1111 >= 1.6): an SDXL refiner checkpoint and where it takes over."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from studio.request import GenerationRequest

if TYPE_CHECKING:
    from studio.service.models import ModelService

DEFAULTS = GenerationRequest()
NO_REFINER = ("None", "")


def refiner_choices(models: "ModelService") -> list[tuple[str, str]]:
    """Only SDXL models (the only ones a refiner can be)."""
    return [NO_REFINER, *[(title, title) for title in models.refiner_titles()]]


def refiner_note(models: "ModelService") -> str:
    return (f"ℹ️ Refiner: put an SDXL refiner (or SDXL base) checkpoint in `{models.checkpoints_folder()}` "
            "and press 🔄 beside the checkpoint to use one.")


def refiner_updates(models: "ModelService", checkpoint: gr.Dropdown) -> list[Any]:
    """After a refresh: the choices, and the panel shown only when there is an SDXL model to pick."""
    choices = refiner_choices(models)
    return [gr.Dropdown(choices=choices), gr.Accordion(visible=len(choices) > 1),
            gr.Markdown(visible=len(choices) <= 1)]


def build_refiner_widgets(models: "ModelService", name: str) -> dict[str, gr.components.Component]:
    """Checkpoint ("None": no refiner) and "Switch at": the fraction of the steps the base model runs."""
    choices = refiner_choices(models)
    # Hidden with no SDXL model to pick (issue 25 §3): one line says where to put one instead.
    note = gr.Markdown(refiner_note(models), visible=len(choices) <= 1, elem_id=f"{name}_refiner_note")
    with gr.Accordion("Refiner", open=False, elem_id=f"{name}_refiner", visible=len(choices) > 1) as panel:
        with gr.Row():
            checkpoint = gr.Dropdown(choices, value="", label="Checkpoint", scale=3,
                                     info="an SDXL refiner (or SDXL model) finishing an SDXL base's image",
                                     elem_id=f"{name}_refiner_checkpoint")
            switch = gr.Slider(0.01, 0.99, value=DEFAULTS.refiner_switch_at, step=0.01, label="Switch at", scale=2,
                               info="fraction of the steps the base model runs", elem_id=f"{name}_refiner_switch_at")
    checkpoint.refiner_panel = (panel, note)  # type: ignore[attr-defined]  # refreshed with the model list
    return {"refiner_checkpoint": checkpoint, "refiner_switch_at": switch}
