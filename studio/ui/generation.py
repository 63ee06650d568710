"""One builder for the txt2img, img2img and inpaint tabs: the same prompt, sampler, size, batch,
CFG and seed controls, Generate/Interrupt, gallery and infotext; each mode adds its source
widgets through a `ModeSource`."""
from __future__ import annotations

import contextvars
import html
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from studio.generation.stepcache import CACHE_CHOICES
from studio.request import (
    MAX_BATCH_COUNT,
    MAX_BATCH_SIZE,
    MAX_CFG,
    MAX_CLIP_SKIP,
    MAX_SIZE,
    MAX_STEPS,
    MIN_SIZE,
    GenerationRequest,
    RequestError,
)
from studio.service.results import time_taken
from studio.ui import sharing
from studio.ui.controlnet import ControlNetPanel, build_controlnet_panel
from studio.ui.errors import error_message, user_errors
from studio.ui.forms import RequestForm
from studio.ui.hires import build_hires_widgets
from studio.ui.networks import build_networks_panel
from studio.ui.presets import build_preset_row
from studio.ui.ranges import guard_range
from studio.ui.refiner import build_refiner_widgets
from studio.ui.sampler_choices import build_sampler_widgets
from studio.ui.scripts import ScriptPanel, build_script_panel, script_outputs
from studio.ui.sizes import build_aspect_buttons
from studio.ui.variation import build_variation_controls, build_variation_group

if TYPE_CHECKING:
    from studio.service.container import Services
    from studio.service.styles import StyleService

DEFAULTS = GenerationRequest()


@dataclass
class ModeSource:
    """Widgets a mode adds. `widgets` map 1:1 to request fields; `derive` turns the values of
    `extra_inputs` (e.g. an image editor's layers) into request fields."""

    widgets: dict[str, gr.components.Component] = field(default_factory=dict)
    extra_inputs: list[gr.components.Component] = field(default_factory=list)
    derive: Callable[[dict[Any, Any]], dict[str, Any]] = lambda values: {}
    named: dict[str, gr.components.Component] = field(default_factory=dict)  # for "Send to" targets
    missing_image: str | None = None  # the message when the mode's source image is missing


@dataclass
class GenerationTab:
    name: str
    form: RequestForm
    generate: gr.Button
    gallery: gr.Gallery
    infotext: gr.Textbox
    last_images: gr.State  # paths of the images of the last run
    selected: gr.State  # index of the image selected in the gallery
    infotexts: gr.State  # the infotext of each image of the last run
    sources: dict[str, gr.components.Component] = field(default_factory=dict)  # mode widgets by name
    # The tab's whole request (form, mode source, ControlNet units) from an event's values, and its inputs.
    to_request: Callable[[dict[Any, Any]], GenerationRequest] | None = None
    request_inputs: set[gr.components.Component] = field(default_factory=set)
    control: ControlNetPanel | None = None  # the ControlNet units
    script: ScriptPanel | None = None  # the Script dropdown: Generate runs the chosen script
    size_ratio: gr.State | None = None  # the last aspect-ratio button (the size follows the model: ui/sizes.py)


def build_generation_tab(
    services: Services,
    model: gr.Dropdown,
    name: str,
    source: Callable[[], ModeSource] | None = None,
    strength: bool = False,
    scripts: bool = False,
    vae: gr.Dropdown | None = None,
    hires: bool = False,
    refiner: bool = False,
) -> GenerationTab:
    generation, models = services.generation, services.models
    native = models.native_size()
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id=f"{name}_prompt",
                                placeholder="a red circle on a blue background  (Ctrl+Enter to generate)")
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{name}_neg_prompt")
            styles = build_styles_row(services.styles, name, prompt, negative)
            build_networks_panel(services.networks, name, prompt)
        with gr.Column(scale=1, min_width=200):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{name}_generate", elem_classes="generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", elem_id=f"{name}_interrupt", min_width=80)
                skip = gr.Button("Skip", elem_id=f"{name}_skip", min_width=80)
            cancel = gr.Button("Cancel (leave the queue)", elem_id=f"{name}_cancel", visible=False, size="sm")
    with gr.Row():
        with gr.Column():
            mode = source() if source else ModeSource()
            with gr.Row():
                sampler, scheduler = build_sampler_widgets(models, name)
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULTS.steps, step=1, label="Sampling steps",
                                  elem_id=f"{name}_steps")
            with gr.Row():
                width = gr.Slider(MIN_SIZE, MAX_SIZE, value=native, step=8, label="Width", elem_id=f"{name}_width")
                height = gr.Slider(MIN_SIZE, MAX_SIZE, value=native, step=8, label="Height", elem_id=f"{name}_height")
            size_ratio = build_aspect_buttons(name, width, height, models.native_size)
            size_note = gr.Markdown(elem_id=f"{name}_size_hint")
            with gr.Row():
                n_iter = gr.Slider(1, MAX_BATCH_COUNT, value=1, step=1, label="Batch count", elem_id=f"{name}_batch_count")
                batch_size = gr.Slider(1, MAX_BATCH_SIZE, value=1, step=1, label="Batch size", elem_id=f"{name}_batch_size")
            with gr.Row():
                cfg = gr.Slider(1, MAX_CFG, value=DEFAULTS.cfg_scale, step=0.5, label="CFG Scale",
                                elem_id=f"{name}_cfg_scale", scale=3)
                clip_skip = gr.Slider(1, MAX_CLIP_SKIP, value=DEFAULTS.clip_skip, step=1, label="Clip skip",
                                      elem_id=f"{name}_clip_skip", scale=1, min_width=170)
                cache = gr.Radio([(label, value) for label, value in CACHE_CHOICES.items()],
                                 value=DEFAULTS.cache_interval, label="Cache (faster, a little less detail)",
                                 elem_id=f"{name}_cache_interval", scale=2)
            widgets: dict[str, gr.components.Component] = {"cache_interval": cache, "restore_faces": gr.Checkbox(
                label="Restore faces", value=False, elem_id=f"{name}_restore_faces")}  # Settings: face restoration model
            build_preset_row(services, name, model, prompt,  # few-step presets, recognised from the model / LoRAs
                             {"sampler_name": sampler, "scheduler": scheduler, "steps": steps, "cfg_scale": cfg})
            if strength:
                widgets["denoising_strength"] = gr.Slider(0, 1, value=DEFAULTS.denoising_strength, step=0.01,
                                                          label="Denoising strength", elem_id=f"{name}_denoising_strength")
                steps_note = gr.Markdown(_steps_note(DEFAULTS.denoising_strength, DEFAULTS.steps),
                                         elem_id=f"{name}_steps_note")
            if hires:
                widgets.update(build_hires_widgets(services, name))
            if refiner:
                widgets.update(build_refiner_widgets(models, name))
            with gr.Row(equal_height=True):
                seed = gr.Number(value=-1, precision=0, label="Seed", elem_id=f"{name}_seed", scale=4)
                dice = gr.Button("🎲", elem_id=f"{name}_random_seed", scale=0, min_width=50)
                recycle = gr.Button("♻️", elem_id=f"{name}_reuse_seed", scale=0, min_width=50)
                variation = build_variation_controls(name)
            build_variation_group(name, variation)
            units = services.options.control_units() if services.options is not None else None
            control = build_controlnet_panel(services.control, native, name, width, height, mode if source else None, units)
            script = build_script_panel(services.extensions, name) if scripts else None
        with gr.Column():
            # The model's guess of the finished picture (x̂0) at the image's size, where the result will be.
            preview = gr.Image(label="Live preview", visible=False, interactive=False, height=420,
                               elem_id=f"{name}_live_preview", format="png", elem_classes="studio-output")
            gallery = gr.Gallery(label="Output", columns=2, height=420, format="png", elem_id=f"{name}_gallery", preview=True,
                                 object_fit="contain", interactive=False, elem_classes="studio-output")
            status = gr.Markdown(elem_id=f"{name}_status")  # saved paths, the queue, an error: under the results
            infotext = gr.Textbox(label="Generation parameters", lines=4, interactive=False,
                                  elem_id=f"{name}_infotext", buttons=["copy"])
    infotexts, seeds, selected, last_images = gr.State([]), gr.State([]), gr.State(0), gr.State([])

    form = RequestForm({
        "prompt": prompt, "negative_prompt": negative, "sampler_name": sampler, "scheduler": scheduler, "steps": steps,
        "cfg_scale": cfg, "width": width, "height": height, "seed": seed, "batch_size": batch_size,
        "n_iter": n_iter, "model": model, "clip_skip": clip_skip, "styles": styles, **widgets, **variation.widgets, **mode.widgets,
        **({"vae": vae} if vae is not None else {}),
    }, followers={variation.extra: variation.follow})

    def to_request(values: dict[Any, Any]) -> GenerationRequest:
        request = form.to_request(values, **mode.derive(values), **control.derive(values), **variation.derive(values))
        if mode.missing_image and request.init_image is None:
            raise RequestError(mode.missing_image)  # never a txt2img picture from the img2img/Inpaint tab
        return request

    request_inputs = form.inputs | set(mode.extra_inputs) | set(control.inputs) | {variation.extra}
    for widget in form.widgets.values():
        if isinstance(widget, gr.Slider):
            guard_range(widget)
    run_inputs = request_inputs | (script.inputs if script else set())

    outputs = [gallery, infotext, infotexts, seeds, selected, status, last_images]

    def run(values: dict[Any, Any], http: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[Any]:
        """An error keeps the last results on screen and says what went wrong beside them until the next
        run (a gr.Error would replace the gallery with a bare "Error" badge, its toast fading in seconds)."""
        yield {status: ""}  # the next run clears the last error
        try:
            yield from run_job(values, http, progress)
        except Exception as error:  # every failure, known or not, is said where the results are
            message = error_message(error)
            gr.Warning(message)
            yield {status: f"<div class='studio-error'>⚠️ <b>Error:</b> {html.escape(message)}</div>",
                   preview: gr.Image(value=None, visible=False), cancel: gr.Button(visible=False)}

    def run_job(values: dict[Any, Any], http: gr.Request, progress: gr.Progress) -> Iterator[Any]:
        session, user = sharing.session_of(http), sharing.user_of(http)
        started = time.monotonic()
        with user_errors():
            request = to_request(values)
            progress(0, desc="Starting…")
            chosen = script.selected(values) if script else None
            if script is not None and chosen is not None:  # A1111: Generate runs the selected script
                with generation.acting_for(sharing.owner_of(http), session, user):  # the tab's Interrupt stops its jobs
                    output = script.run(chosen, values, request, lambda f, d: progress(f, desc=d), gr.Warning)
                images, texts, used, paths = script_outputs(output)
                yield {gallery: gr.Gallery(value=images, selected_index=0 if images else None),
                       infotext: (texts[0] if texts else ""), infotexts: texts, seeds: used, selected: 0,
                       status: output.note, last_images: paths}
                return
            place = generation.enqueue(request, sharing.owner_of(http), session)  # full: gr.Error; None: no queue
        previews: queue.Queue[Any] = queue.Queue()
        steps: queue.Queue[tuple[tuple[int, int], str]] = queue.Queue()

        def on_step(state: Any) -> None:  # on the job's thread: hand over, Gradio is told from this one
            steps.put(((state.image * state.steps + state.step, max(1, state.steps * state.images)),
                       progress_label(state)))
            image = generation.live_preview(state)
            if image is not None:
                previews.put(image)

        extra = {"job": place, "user": user} if place is not None else {}
        running = _Background(lambda: generation.submit(request, on_step, **extra))
        waiting = ""
        try:
            while not running.done.wait(0.1):
                text = generation.queue_text(place)
                if text or waiting:  # while queued: where it stands (and a way out)
                    if text != waiting:
                        progress(0, desc=text or "Starting…")
                        yield {status: text, cancel: gr.Button(visible=bool(text))}
                        waiting = text
                    continue
                latest_step = _drain(steps)
                if latest_step is not None:
                    progress(latest_step[0], desc=latest_step[1])
                latest = _drain(previews)
                if latest is not None:
                    yield {preview: gr.Image(value=latest, visible=True)}
        finally:
            if not running.done.is_set() and place is not None:  # the page went away: drop the job
                generation.cancel(place)
        with user_errors():
            job = running.result()
        for notice in getattr(job, "notices", ()):  # extension hooks that failed (the job still ran)
            gr.Warning(notice)
        images = [(str(item.path) if item.path else item.image, "Grid" if item.grid else f"Seed {item.seed}")
                  for item in job.images if item.path or item.grid]  # an unsaved grid is shown from memory
        texts = [item.infotext for item in job.images]
        note = _job_note(job, [str(item.path) for item in job.images if item.path and not item.grid])
        if place is not None and job.interrupted and not getattr(place, "done_iterations", 1):
            note = "Cancelled: the job left the queue before it started."
        note += f"\n\n{time_taken(time.monotonic() - started)}"  # A1111's line under the results
        if job.interrupted and not images:  # nothing finished: the previous results stay on screen
            yield {status: note, preview: gr.Image(value=None, visible=False), cancel: gr.Button(visible=False)}
            return
        yield {gallery: gr.Gallery(value=images, selected_index=0 if images else None),
               infotext: (texts[0] if texts else ""), infotexts: texts,
               seeds: [item.seed for item in job.images], selected: 0, status: note,
               last_images: [path for path, _ in images], preview: gr.Image(value=None, visible=False),
               cancel: gr.Button(visible=False)}

    # Many jobs may wait at once: the studio's own queue (studio/service/queue.py) orders them and shows each
    # tab its place; Gradio's queue only holds them until their handler starts.
    generate.click(run, inputs=run_inputs, outputs=[*outputs, preview, cancel],
                   concurrency_id="generate", concurrency_limit=sharing.concurrency(generation), show_progress_on=[gallery])
    interrupt.click(sharing.session_action(lambda session: generation.interrupt(session=session)), queue=False)
    skip.click(sharing.session_action(lambda session: generation.skip(session=session)), queue=False)
    cancel.click(sharing.session_action(lambda session: generation.interrupt(session=session), hide=True),
                 outputs=cancel, queue=False)
    dice.click(lambda: -1, outputs=seed, queue=False)
    recycle.click(lambda used, index: used[index] if used else -1, inputs=[seeds, selected], outputs=seed, queue=False)

    def on_select(texts: list[str], event: gr.SelectData) -> tuple[str, int]:
        index = event.index if isinstance(event.index, int) else 0
        return (texts[index] if index < len(texts) else ""), index

    gallery.select(on_select, inputs=infotexts, outputs=[infotext, selected], queue=False)
    gr.on([width.change, height.change], lambda w, h: size_hint(w, h, models.native_size()), inputs=[width, height],
          outputs=size_note, queue=False, show_progress="hidden")
    if strength:
        for trigger in (widgets["denoising_strength"], steps):
            trigger.change(_steps_note, inputs=[widgets["denoising_strength"], steps], outputs=steps_note, queue=False)
    return GenerationTab(name, form, generate, gallery, infotext, last_images, selected, infotexts, mode.named,
                         to_request=to_request, request_inputs=request_inputs, control=control, script=script,
                         size_ratio=size_ratio)


def progress_label(state: Any) -> str:
    """'Step 14/150 · batch 2/3 · ETA 0:42' (the batch part only for a batch count above 1)."""
    label = f"Step {state.step}/{state.steps}"
    if getattr(state, "phase", ""):
        label += f" · {state.phase}"
    if state.images > 1:
        label += f" · batch {state.image + 1}/{state.images}"
    eta = getattr(state, "eta", 0.0)
    if eta > 0:
        minutes, seconds = divmod(int(round(eta)), 60)
        label += f" · ETA {minutes}:{seconds:02d}"
    return label


def _job_note(job: Any, paths: list[str]) -> str:
    skipped = getattr(job, "skipped", 0)
    skipped_text = f" Skipped {skipped} iteration(s)." if skipped else ""
    if job.interrupted:
        partial = [item.partial for item in job.images if getattr(item, "partial", "")]
        kept = f" The picture in progress at step {partial[0]} was kept and saved too." if partial else ""
        finished = len(paths) - len(partial)
        return f"Interrupted: the {finished} image(s) finished before the interrupt were saved.{kept}{skipped_text}"
    saved = f"Saved {len(paths)} image(s): `{paths[0]}`." if paths else "No image saved."
    return saved + skipped_text


class _Background:
    """A call run on its own thread; result() returns its value or raises its exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._value = call()
            except BaseException as error:  # re-raised on the caller's thread
                self._error = error
            finally:
                self.done.set()

        # In the caller's context: Gradio's request context (ZeroGPU's spaces.GPU reads it) goes along.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(target,), daemon=True, name="generation").start()

    def result(self) -> Any:
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def _drain(items: queue.Queue[Any]) -> Any:
    """The newest item in the queue (older previews are stale), or None."""
    latest = None
    while True:
        try:
            latest = items.get_nowait()
        except queue.Empty:
            return latest


def build_styles_row(styles_service: StyleService, name: str, prompt: gr.Textbox, negative: gr.Textbox) -> gr.Dropdown:
    """Styles from styles.csv: pick several (applied when generating), or apply them into the prompt
    boxes now, or save the current prompts as a new style."""
    with gr.Row(equal_height=True):
        styles = gr.Dropdown(styles_service.names(), value=[], multiselect=True, label="Styles", scale=5,
                             elem_id=f"{name}_styles")
        apply = gr.Button("Apply styles", size="sm", elem_id=f"{name}_style_apply", scale=0, min_width=110)
    with gr.Accordion("Save the prompts as a style", open=False, elem_id=f"{name}_style_save_panel"):
        with gr.Row(equal_height=True):
            new_name = gr.Textbox(show_label=False, placeholder="style name", scale=4, elem_id=f"{name}_style_name")
            save = gr.Button("Save style", size="sm", elem_id=f"{name}_style_save", scale=0, min_width=110)

    def apply_selected(text: str, negative_text: str, names: list[str]) -> tuple:
        with user_errors():
            expanded, expanded_negative = styles_service.apply(text, negative_text, list(names or []))
        return expanded, expanded_negative, []  # applied: unselect, or Generate would apply them twice

    def save_current(style: str, text: str, negative_text: str, selected: list[str]) -> tuple:
        with user_errors():
            names = styles_service.save(style, text, negative_text)
        return gr.update(choices=names, value=selected), ""

    apply.click(apply_selected, inputs=[prompt, negative, styles], outputs=[prompt, negative, styles], queue=False)
    save.click(save_current, inputs=[new_name, prompt, negative, styles], outputs=[styles, new_name], queue=False)
    return styles


def _steps_note(strength: float, steps: float) -> str:
    """img2img runs the last floor(strength * steps) steps: say how many."""
    return f"Steps that will run: **{int(float(strength) * int(steps))}** of {int(steps)}"


def size_hint(width: float, height: float, native: int) -> str:
    """A1111-style note (not a refusal) when the size is far from the size the model was trained at."""
    w, h = int(width), int(height)
    if max(w, h) < 2 * native and min(w, h) > native // 2:
        return ""
    return (f"ℹ️ This model was trained at {native}×{native}; at {w}×{h} expect repeated or broken shapes. "
            f"For a clean picture use about {native}×{native}.")
