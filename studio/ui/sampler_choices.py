"""The Sampling method and Schedule type dropdowns: only what the loaded model can run, and only
the schedule types the chosen sampler takes (issue 25: the choices offered are choices that work).
The sampler list follows a model switch (`sampler_updates`); the schedule list follows the sampler."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from studio.request import GenerationRequest

if TYPE_CHECKING:
    from studio.service.models import ModelService

DEFAULTS = GenerationRequest()


def build_sampler_widgets(models: "ModelService", name: str) -> tuple[gr.Dropdown, gr.Dropdown]:
    samplers = models.runnable_samplers()
    sampler = gr.Dropdown(samplers, value=DEFAULTS.sampler_name if DEFAULTS.sampler_name in samplers else samplers[0],
                          label="Sampling method", elem_id=f"{name}_sampling")
    scheduler = gr.Dropdown(models.sampler_schedule_types(sampler.value), value=DEFAULTS.scheduler,
                            label="Schedule type", elem_id=f"{name}_scheduler")
    sampler.change(lambda chosen, schedule: schedule_update(models, chosen, schedule), inputs=[sampler, scheduler],
                   outputs=scheduler, queue=False, show_progress="hidden")
    return sampler, scheduler


def schedule_update(models: "ModelService", sampler: str, schedule: str) -> Any:
    """The sampler's schedule types; the choice is kept when the sampler takes it, else Automatic."""
    choices = models.sampler_schedule_types(sampler) if sampler else ["Automatic"]
    return gr.Dropdown(choices=choices, value=schedule if schedule in choices else choices[0])


def sampler_updates(models: "ModelService", current: list[str]) -> list[Any]:
    """After a model switch: each tab's sampler list for the new model (the choice kept when it runs)."""
    samplers = models.runnable_samplers()
    return [gr.Dropdown(choices=samplers, value=value if value in samplers else samplers[0]) for value in current]
