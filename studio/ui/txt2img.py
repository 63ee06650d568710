"""The txt2img tab: prompt and generation controls, Generate/Interrupt, gallery and infotext."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.request import GenerationRequest, MAX_BATCH_COUNT, MAX_BATCH_SIZE, MAX_CFG, MAX_SIZE, MAX_STEPS, MIN_SIZE
from studio.ui.context import UiContext
from studio.ui.errors import user_errors
from studio.ui.forms import RequestForm

DEFAULTS = GenerationRequest()


@dataclass
class Txt2ImgTab:
    form: RequestForm
    generate: gr.Button
    gallery: gr.Gallery
    infotext: gr.Textbox


def build_txt2img_tab(ctx: UiContext, model: gr.Dropdown) -> Txt2ImgTab:
    native = ctx.native_size()
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt",
                                placeholder="a red circle on a blue background  (Ctrl+Enter to generate)")
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt")
        with gr.Column(scale=1, min_width=200):
            generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
            interrupt = gr.Button("Interrupt", elem_id="txt2img_interrupt")
    with gr.Row():
        with gr.Column():
            with gr.Row():
                sampler = gr.Dropdown(ctx.sampler_names(), value=DEFAULTS.sampler_name, label="Sampling method",
                                      elem_id="txt2img_sampling")
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULTS.steps, step=1, label="Sampling steps", elem_id="txt2img_steps")
            with gr.Row():
                width = gr.Slider(MIN_SIZE, MAX_SIZE, value=native, step=8, label="Width", elem_id="txt2img_width")
                height = gr.Slider(MIN_SIZE, MAX_SIZE, value=native, step=8, label="Height", elem_id="txt2img_height")
            with gr.Row():
                n_iter = gr.Slider(1, MAX_BATCH_COUNT, value=1, step=1, label="Batch count", elem_id="txt2img_batch_count")
                batch_size = gr.Slider(1, MAX_BATCH_SIZE, value=1, step=1, label="Batch size", elem_id="txt2img_batch_size")
            cfg = gr.Slider(1, MAX_CFG, value=DEFAULTS.cfg_scale, step=0.5, label="CFG Scale", elem_id="txt2img_cfg_scale")
            with gr.Row(equal_height=True):
                seed = gr.Number(value=-1, precision=0, label="Seed", elem_id="txt2img_seed", scale=4)
                dice = gr.Button("🎲", elem_id="txt2img_random_seed", scale=0, min_width=50)
                recycle = gr.Button("♻️", elem_id="txt2img_reuse_seed", scale=0, min_width=50)
        with gr.Column():
            gallery = gr.Gallery(label="Output", columns=2, height=420, format="png", elem_id="txt2img_gallery",
                                 object_fit="contain", interactive=False)
            infotext = gr.Textbox(label="Generation parameters", lines=4, interactive=False,
                                  elem_id="txt2img_infotext", buttons=["copy"])
            status = gr.Markdown(elem_id="txt2img_status")
    infotexts = gr.State([])
    seeds = gr.State([])
    selected = gr.State(0)

    form = RequestForm({
        "prompt": prompt, "negative_prompt": negative, "sampler_name": sampler, "steps": steps,
        "cfg_scale": cfg, "width": width, "height": height, "seed": seed, "batch_size": batch_size,
        "n_iter": n_iter, "model": model,
    })

    def run(values: dict[Any, Any], progress: gr.Progress = gr.Progress()) -> tuple:
        with user_errors(ctx.error_types):
            request = form.to_request(values)
            progress(0, desc="Starting…")

            def on_step(state: Any) -> None:
                label = f"Step {state.step}/{state.steps}"
                if state.images > 1:
                    label += f" · batch {state.image + 1}/{state.images}"
                progress((state.image * state.steps + state.step, state.steps * state.images), desc=label)

            job = ctx.submit(request, on_step)
        images = [(str(item.path), f"Seed {item.seed}") for item in job.images if item.path]
        texts = [item.infotext for item in job.images]
        used = [item.seed for item in job.images]
        note = "Interrupted: images finished before the interrupt were saved." if job.interrupted else (
            f"Saved {len(images)} image(s): `{images[0][0]}`" if images else "")
        return images, (texts[0] if texts else ""), texts, used, 0, note

    generate.click(run, inputs=form.inputs, outputs=[gallery, infotext, infotexts, seeds, selected, status],
                   concurrency_id="generation", concurrency_limit=1)
    interrupt.click(ctx.interrupt, queue=False)
    dice.click(lambda: -1, outputs=seed, queue=False)
    recycle.click(lambda used, index: used[index] if used else -1, inputs=[seeds, selected], outputs=seed, queue=False)

    def on_select(texts: list[str], event: gr.SelectData) -> tuple[str, int]:
        index = event.index if isinstance(event.index, int) else 0
        return (texts[index] if index < len(texts) else ""), index

    gallery.select(on_select, inputs=infotexts, outputs=[infotext, selected], queue=False)
    return Txt2ImgTab(form, generate, gallery, infotext)
