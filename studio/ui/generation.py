"""One builder for the txt2img, img2img and inpaint tabs: the same prompt, sampler, size, batch,
CFG and seed controls, Generate/Interrupt, gallery and infotext; each mode adds its source
widgets through a `ModeSource`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from studio.request import GenerationRequest, MAX_BATCH_COUNT, MAX_BATCH_SIZE, MAX_CFG, MAX_SIZE, MAX_STEPS, MIN_SIZE
from studio.ui.context import UiContext
from studio.ui.controlnet import ControlNetPanel, build_controlnet_panel
from studio.ui.errors import user_errors
from studio.ui.forms import RequestForm
from studio.ui.hires import build_hires_widgets

DEFAULTS = GenerationRequest()


@dataclass
class ModeSource:
    """Widgets a mode adds. `widgets` map 1:1 to request fields; `derive` turns the values of
    `extra_inputs` (e.g. an image editor's layers) into request fields."""

    widgets: dict[str, gr.components.Component] = field(default_factory=dict)
    extra_inputs: list[gr.components.Component] = field(default_factory=list)
    derive: Callable[[dict[Any, Any]], dict[str, Any]] = lambda values: {}
    named: dict[str, gr.components.Component] = field(default_factory=dict)  # for "Send to" targets


@dataclass
class GenerationTab:
    name: str
    form: RequestForm
    generate: gr.Button
    gallery: gr.Gallery
    infotext: gr.Textbox
    last_images: gr.State  # paths of the images of the last run
    selected: gr.State  # index of the image selected in the gallery
    sources: dict[str, gr.components.Component] = field(default_factory=dict)  # mode widgets by name
    # The tab's whole request (form, mode source, ControlNet units) from an event's values, and its inputs.
    to_request: Callable[[dict[Any, Any]], GenerationRequest] | None = None
    request_inputs: set[gr.components.Component] = field(default_factory=set)
    control: ControlNetPanel | None = None  # the ControlNet units


def build_generation_tab(
    ctx: UiContext,
    model: gr.Dropdown,
    name: str,
    source: Callable[[], ModeSource] | None = None,
    strength: bool = False,
    hires: bool = False,
) -> GenerationTab:
    native = ctx.native_size()
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id=f"{name}_prompt",
                                placeholder="a red circle on a blue background  (Ctrl+Enter to generate)")
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{name}_neg_prompt")
        with gr.Column(scale=1, min_width=200):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{name}_generate", elem_classes="generate")
            interrupt = gr.Button("Interrupt", elem_id=f"{name}_interrupt")
    with gr.Row():
        with gr.Column():
            mode = source() if source else ModeSource()
            with gr.Row():
                sampler = gr.Dropdown(ctx.sampler_names(), value=DEFAULTS.sampler_name, label="Sampling method",
                                      elem_id=f"{name}_sampling")
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULTS.steps, step=1, label="Sampling steps",
                                  elem_id=f"{name}_steps")
            with gr.Row():
                width = gr.Slider(MIN_SIZE, MAX_SIZE, value=native, step=8, label="Width", elem_id=f"{name}_width")
                height = gr.Slider(MIN_SIZE, MAX_SIZE, value=native, step=8, label="Height", elem_id=f"{name}_height")
            with gr.Row():
                n_iter = gr.Slider(1, MAX_BATCH_COUNT, value=1, step=1, label="Batch count", elem_id=f"{name}_batch_count")
                batch_size = gr.Slider(1, MAX_BATCH_SIZE, value=1, step=1, label="Batch size", elem_id=f"{name}_batch_size")
            cfg = gr.Slider(1, MAX_CFG, value=DEFAULTS.cfg_scale, step=0.5, label="CFG Scale", elem_id=f"{name}_cfg_scale")
            widgets: dict[str, gr.components.Component] = {}
            if strength:
                widgets["denoising_strength"] = gr.Slider(0, 1, value=DEFAULTS.denoising_strength, step=0.01,
                                                          label="Denoising strength", elem_id=f"{name}_denoising_strength")
                steps_note = gr.Markdown(_steps_note(DEFAULTS.denoising_strength, DEFAULTS.steps),
                                         elem_id=f"{name}_steps_note")
            if hires:
                widgets.update(build_hires_widgets(ctx, name))
            with gr.Row(equal_height=True):
                seed = gr.Number(value=-1, precision=0, label="Seed", elem_id=f"{name}_seed", scale=4)
                dice = gr.Button("🎲", elem_id=f"{name}_random_seed", scale=0, min_width=50)
                recycle = gr.Button("♻️", elem_id=f"{name}_reuse_seed", scale=0, min_width=50)
            control = build_controlnet_panel(ctx, name, width, height, mode if source else None)
        with gr.Column():
            gallery = gr.Gallery(label="Output", columns=2, height=420, format="png", elem_id=f"{name}_gallery",
                                 object_fit="contain", interactive=False)
            infotext = gr.Textbox(label="Generation parameters", lines=4, interactive=False,
                                  elem_id=f"{name}_infotext", buttons=["copy"])
            status = gr.Markdown(elem_id=f"{name}_status")
    infotexts, seeds, selected, last_images = gr.State([]), gr.State([]), gr.State(0), gr.State([])

    form = RequestForm({
        "prompt": prompt, "negative_prompt": negative, "sampler_name": sampler, "steps": steps,
        "cfg_scale": cfg, "width": width, "height": height, "seed": seed, "batch_size": batch_size,
        "n_iter": n_iter, "model": model, **widgets, **mode.widgets,
    })

    def to_request(values: dict[Any, Any]) -> GenerationRequest:
        return form.to_request(values, **mode.derive(values), **control.derive(values))

    request_inputs = form.inputs | set(mode.extra_inputs) | set(control.inputs)

    def run(values: dict[Any, Any], progress: gr.Progress = gr.Progress()) -> tuple:
        with user_errors(ctx.error_types):
            request = to_request(values)
            progress(0, desc="Starting…")

            def on_step(state: Any) -> None:
                label = f"Step {state.step}/{state.steps}"
                if getattr(state, "phase", ""):
                    label += f" · {state.phase}"
                if state.images > 1:
                    label += f" · batch {state.image + 1}/{state.images}"
                progress((state.image * state.steps + state.step, max(1, state.steps * state.images)), desc=label)

            job = ctx.submit(request, on_step)
        images = [(str(item.path), f"Seed {item.seed}") for item in job.images if item.path]
        texts = [item.infotext for item in job.images]
        note = "Interrupted: images finished before the interrupt were saved." if job.interrupted else (
            f"Saved {len(images)} image(s): `{images[0][0]}`" if images else "")
        return (images, (texts[0] if texts else ""), texts, [item.seed for item in job.images], 0, note,
                [path for path, _ in images])

    generate.click(run, inputs=request_inputs,
                   outputs=[gallery, infotext, infotexts, seeds, selected, status, last_images],
                   concurrency_id="generation", concurrency_limit=1)
    interrupt.click(ctx.interrupt, queue=False)
    dice.click(lambda: -1, outputs=seed, queue=False)
    recycle.click(lambda used, index: used[index] if used else -1, inputs=[seeds, selected], outputs=seed, queue=False)

    def on_select(texts: list[str], event: gr.SelectData) -> tuple[str, int]:
        index = event.index if isinstance(event.index, int) else 0
        return (texts[index] if index < len(texts) else ""), index

    gallery.select(on_select, inputs=infotexts, outputs=[infotext, selected], queue=False)
    if strength:
        for trigger in (widgets["denoising_strength"], steps):
            trigger.change(_steps_note, inputs=[widgets["denoising_strength"], steps], outputs=steps_note, queue=False)
    return GenerationTab(name, form, generate, gallery, infotext, last_images, selected, mode.named,
                         to_request=to_request, request_inputs=request_inputs, control=control)


def _steps_note(strength: float, steps: float) -> str:
    """img2img runs the last floor(strength * steps) steps: say how many."""
    return f"Steps that will run: **{int(float(strength) * int(steps))}** of {int(steps)}"
