"""The generation tabs' preset row: pick a preset from presets/ (it sets sampler, schedule type, steps
and CFG), and a hint when the chosen model or a LoRA in the prompt is a few-step model (LCM, TCD,
Hyper-SD, Turbo, Lightning: studio/service/few_step.py) with a button applying what it calls for."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from studio.service.few_step import recognise
from studio.service.presets import load_presets

if TYPE_CHECKING:
    from studio.service.container import Services

APPLIED = ("sampler_name", "scheduler", "steps", "cfg_scale")


def build_preset_row(services: Services, name: str, model: gr.Dropdown, prompt: gr.Textbox,
                     targets: dict[str, gr.components.Component]) -> gr.Dropdown:
    """`targets`: the sampler, schedule type, steps and CFG widgets by request field name."""
    presets = load_presets()
    with gr.Row(equal_height=True):
        preset = gr.Dropdown(["None", *presets], value="None", label="Preset", elem_id=f"{name}_preset",
                             scale=1, min_width=160)
        hint = gr.Markdown(elem_id=f"{name}_preset_hint")
        use = gr.Button("Use recommended", visible=False, size="sm", elem_id=f"{name}_preset_use", scale=0)
    outputs = [targets[key] for key in APPLIED]

    def values(fields: dict[str, Any]) -> list[Any]:
        return [fields.get(key, gr.skip()) for key in APPLIED]

    def apply(choice: str) -> list[Any]:
        return values(presets.get(choice, {}))

    def check(title: str, text: str) -> tuple[str, Any]:
        found = recognise(services.settings, text or "", title or None)
        return (found.message() if found else ""), gr.update(visible=found is not None)

    def use_recognised(title: str, text: str) -> list[Any]:
        found = recognise(services.settings, text or "", title or None)
        return values(found.values if found else {})

    preset.change(apply, inputs=preset, outputs=outputs, queue=False)
    gr.on([model.change, prompt.blur], check, inputs=[model, prompt], outputs=[hint, use], queue=False,
          show_progress="hidden")
    use.click(use_recognised, inputs=[model, prompt], outputs=outputs, queue=False)
    return preset
