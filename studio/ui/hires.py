"""The txt2img "Hires. fix" accordion: widgets bound to the request's hr_* fields by name."""
from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from studio.request import MAX_HR_SCALE, MAX_SIZE, MAX_STEPS, GenerationRequest

if TYPE_CHECKING:
    from studio.service.container import Services

DEFAULTS = GenerationRequest()
SAME_SAMPLER = "Use same sampler"


def build_hires_widgets(services: "Services", name: str) -> dict[str, gr.components.Component]:
    """Checkbox, upscaler, upscale by / resize to, hires steps, denoising, optional prompts/sampler."""
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{name}_hires_fix"):
        enable = gr.Checkbox(label="Enable hires. fix", value=False, elem_id=f"{name}_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(services.extras.upscaler_names(), value=DEFAULTS.hr_upscaler, label="Upscaler",
                                   elem_id=f"{name}_hr_upscaler")
            steps = gr.Slider(0, MAX_STEPS, value=0, step=1, label="Hires steps", info="0: the sampling steps",
                              elem_id=f"{name}_hires_steps")
            denoise = gr.Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                elem_id=f"{name}_denoising_strength")
        with gr.Row():
            scale = gr.Slider(1, MAX_HR_SCALE, value=DEFAULTS.hr_scale, step=0.05, label="Upscale by",
                              elem_id=f"{name}_hr_scale")
            resize_x = gr.Slider(0, MAX_SIZE, value=0, step=8, label="Resize width to", info="0: upscale by",
                                 elem_id=f"{name}_hr_resize_x")
            resize_y = gr.Slider(0, MAX_SIZE, value=0, step=8, label="Resize height to", info="0: upscale by",
                                 elem_id=f"{name}_hr_resize_y")
        sampler = gr.Dropdown([(SAME_SAMPLER, ""), *[(s, s) for s in services.models.sampler_names()]], value="",
                              label="Hires sampling method", elem_id=f"{name}_hr_sampler")
        with gr.Row():
            prompt = gr.Textbox(label="Hires prompt (empty: the prompt)", lines=2, elem_id=f"{name}_hr_prompt")
            negative = gr.Textbox(label="Hires negative prompt (empty: the negative prompt)", lines=2,
                                  elem_id=f"{name}_hr_neg_prompt")
    return {"enable_hr": enable, "hr_upscaler": upscaler, "hr_second_pass_steps": steps,
            "denoising_strength": denoise, "hr_scale": scale, "hr_resize_x": resize_x, "hr_resize_y": resize_y,
            "hr_sampler_name": sampler, "hr_prompt": prompt, "hr_negative_prompt": negative}
