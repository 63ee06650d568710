"""Assemble the Blocks: model picker on top, one tab per mode, PNG Info and Settings."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from studio.images import decode_image
from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.service.folders import named_folders
from studio.ui import sharing
from studio.ui.batch import build_img2img_batch
from studio.ui.errors import USER_ERRORS, hide_folders, user_errors
from studio.ui.extensions_tab import build_extension_tab, build_extensions_tab
from studio.ui.extras_tab import build_extras_tab
from studio.ui.generation import GenerationTab, build_generation_tab
from studio.ui.history_tab import build_history_tab
from studio.ui.img2img import INPAINT_AREAS, img2img_source, inpaint_source
from studio.ui.networks import build_vae_picker
from studio.ui.pnginfo import build_pnginfo_tab
from studio.ui.pose_editor import read_asset
from studio.ui.refiner import refiner_updates
from studio.ui.sampler_choices import sampler_updates
from studio.ui.settings_tab import build_settings_tab
from studio.ui.sizes import follow_model

if TYPE_CHECKING:
    from studio.service.container import Services
    from studio.service.models import ModelService

# Ctrl+Enter (Cmd+Enter) clicks the Generate button of the visible tab, as in A1111.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.key !== 'Enter') return;
  const button = [...document.querySelectorAll('button.generate')].find((b) => b.offsetParent !== null);
  if (button) { event.preventDefault(); button.click(); }
});
</script>
"""
CSS = """
button.generate { min-height: 5em; }
.studio-title { margin: 0; }
"""


def build_ui(services: "Services") -> gr.Blocks:
    """Every tab receives the services it uses from the container, nothing else."""
    models, generation, outputs = services.models, services.generation, services.outputs
    hide_folders(named_folders(services.settings))  # error texts name files relative to these
    with gr.Blocks(title="Diffusion Studio") as demo:
        # Output galleries show the whole image, small ones scaled by a whole factor with crisp pixels.
        gr.HTML("", head=f"<style>{read_asset('output_images.css')}</style>"
                         f"<script>{read_asset('output_images.js')}</script>", visible="hidden")
        with gr.Row(equal_height=True):
            gr.Markdown("## Diffusion Studio", elem_classes="studio-title")
            model = gr.Dropdown(models.titles(), value=models.current_title(), label="Stable Diffusion checkpoint",
                                elem_id="model_checkpoint", scale=3)
            refresh = gr.Button("🔄", elem_id="refresh_models", scale=0, min_width=50)
            vae = build_vae_picker(services.networks)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                txt2img = build_generation_tab(services, model, "txt2img", scripts=True, vae=vae, hires=True, refiner=True)
                to_img2img_t, to_inpaint_t = _send_buttons("txt2img")
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                img2img = build_generation_tab(services, model, "img2img", img2img_source, strength=True, scripts=True,
                                               vae=vae, refiner=True)
                to_img2img_i, to_inpaint_i = _send_buttons("img2img")
                build_img2img_batch(generation, img2img)
            with gr.Tab("Inpaint", id="inpaint", elem_id="tab_inpaint"):
                inpaint = build_generation_tab(services, model, "inpaint", inpaint_source, strength=True, vae=vae)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                build_extras_tab(services.extras)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png = build_pnginfo_tab(outputs, generation)
            with gr.Tab("History", id="history", elem_id="tab_history") as history_tab:
                history = build_history_tab(outputs, generation)
            for extension_tab in services.extensions.tabs():
                with gr.Tab(extension_tab.title, elem_classes="extension-tab"):
                    build_extension_tab(extension_tab)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                build_extensions_tab(services.extensions)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                settings_loader = build_settings_tab(services.settings, services.options)

        _wire_model_picker(models, model, refresh, [txt2img, img2img, inpaint])
        refresh.click(lambda: gr.Dropdown(choices=services.networks.vae_names()), outputs=vae, queue=False)
        for source, button, target in ((txt2img, to_img2img_t, img2img), (txt2img, to_inpaint_t, inpaint),
                                       (img2img, to_img2img_i, img2img), (img2img, to_inpaint_i, inpaint)):
            _wire_send_result(button, source, target, tabs)
        for tab in (txt2img, img2img, inpaint):
            _wire_send_png(png.buttons[tab.name], png.path, png.fields, tab, tabs)
            _wire_send_png(history.buttons[tab.name], history.path, history.fields, tab, tabs)
        show, shown_from, shown_in = history.load
        history_tab.select(show, inputs=shown_from, outputs=shown_in, queue=False)
        if services.options is not None:
            _wire_form_defaults(demo, services.options, [txt2img, img2img, inpaint])
        if settings_loader is not None:
            demo.load(settings_loader[0], outputs=settings_loader[1], queue=False)
        demo.unload(sharing.close_handler(generation))  # a closed tab's jobs leave the queue / stop at the next step
    return demo


def _wire_form_defaults(demo: gr.Blocks, options: Any, tabs: list[GenerationTab]) -> None:
    """Each page load starts the forms from the Settings page's defaults (applied without a restart)."""
    keys = {"sampler_name": "default_sampler_name", "steps": "default_steps", "cfg_scale": "default_cfg_scale"}
    targets = [(tab.form.widgets[field], key) for tab in tabs for field, key in keys.items() if field in tab.form.widgets]
    demo.load(lambda: [options.get(key) for _, key in targets], outputs=[widget for widget, _ in targets], queue=False)


def _send_buttons(name: str) -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        return (gr.Button("Send to img2img", elem_id=f"{name}_send_img2img", size="sm"),
                gr.Button("Send to inpaint", elem_id=f"{name}_send_inpaint", size="sm"))


def _wire_model_picker(models: "ModelService", model: gr.Dropdown, refresh: gr.Button,
                       tabs: list[GenerationTab]) -> None:
    """Switching models; each tab's size follows the model's default size unless the user chose one."""
    sizes = [w for tab in tabs for w in (tab.form.widgets["width"], tab.form.widgets["height"])]
    ratios = [tab.size_ratio for tab in tabs]
    refiners = [tab.form.widgets["refiner_checkpoint"] for tab in tabs if "refiner_checkpoint" in tab.form.widgets]
    samplers = [tab.form.widgets["sampler_name"] for tab in tabs]

    def switch_model(values: dict[Any, Any], progress: gr.Progress = gr.Progress()) -> list[Any]:
        title = values[model]
        progress(0, desc=f"Loading {title}…")
        before = models.native_size()
        try:
            loaded = models.load(title)
        except USER_ERRORS as error:
            # The previous model keeps working: put the dropdown back on it and say why.
            gr.Warning(f"Could not switch model: {error}")
            loaded = models.current_title()
        after = models.native_size()
        updates: list[Any] = []
        for index, ratio in enumerate(ratios):
            updates += follow_model(before, after, values[sizes[2 * index]], values[sizes[2 * index + 1]], values[ratio])
        return [gr.Dropdown(value=loaded), *updates, *sampler_updates(models, [values[s] for s in samplers])]

    model.input(switch_model, inputs={model, *sizes, *ratios, *samplers}, outputs=[model, *sizes, *samplers],
                concurrency_id="generation",
                concurrency_limit=1)
    refresh.click(lambda: [gr.Dropdown(choices=models.titles()),
                           *[update for refiner in refiners for update in refiner_updates(models, refiner)]],
                  outputs=[model, *[w for refiner in refiners for w in (refiner, *refiner.refiner_panel)]], queue=False)


# What "Send to" carries from the selected image's infotext (A1111 carries them all; not the batch).
SENT_FIELDS = ("prompt", "negative_prompt", "sampler_name", "scheduler", "steps", "cfg_scale", "width", "height", "seed",
               "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h", "denoising_strength")


def _wire_send_result(button: gr.Button, source: GenerationTab, target: GenerationTab, tabs: gr.Tabs) -> None:
    """A1111's "Send to": the selected result image and its parameters (the seed it was made with,
    sampler, steps, CFG, size, prompts) go to the target tab."""
    image_widget = target.sources["image"]
    fields = [name for name in SENT_FIELDS if name in target.form.widgets]

    def send(paths: list[str], index: int, texts: list[str]) -> dict[Any, Any]:
        if not paths:
            raise gr.Error("Generate an image first.", print_exception=False)
        index = min(index, len(paths) - 1)
        made_with = params_to_request_fields(parse_infotext(texts[index])) if index < len(texts) else {}
        updates = target.form.fill({name: made_with[name] for name in fields if name in made_with})
        updates[image_widget] = paths[index]
        updates[tabs] = gr.Tabs(selected=target.name)
        return updates

    button.click(send, inputs=[source.last_images, source.selected, source.infotexts],
                 outputs=[image_widget, *(target.form.widgets[name] for name in fields), *target.form.followers, tabs],
                 queue=False)


def _wire_send_png(button: gr.Button, path: gr.State, fields: gr.State, tab: GenerationTab, tabs: gr.Tabs) -> None:
    """PNG Info's "Send to <tab>": every parameter; the image (or its saved init image) and mask too."""
    extra = [w for key, w in tab.sources.items()]
    control = tab.control.fill_outputs if tab.control is not None else []
    outputs = [*tab.form.fill_outputs, *extra, *control, tabs]

    def send(png_path: str | None, values: dict[str, Any]) -> dict[Any, Any]:
        if not png_path or not values:
            raise gr.Error("Drop a PNG with generation parameters first.", print_exception=False)
        images = {k: values.get(k) for k in ("init_image", "mask")}
        units = values.get("controlnet_units") or []
        values = {k: v for k, v in values.items() if k not in ("model", "init_image", "mask", "controlnet_units")}
        with user_errors():  # a damaged embedded image is a message, not a traceback
            updates = tab.form.fill(values)
            updates.update(_source_updates(Path(png_path), images, values, tab))
            if tab.control is not None:
                updates.update(tab.control.fill(units))
        updates[tabs] = gr.Tabs(selected=tab.name)
        return updates

    button.click(send, inputs=[path, fields], outputs=outputs, queue=False)


def _source_updates(png: Path, images: dict[str, Any], values: dict[str, Any], tab: GenerationTab) -> dict[Any, Any]:
    """The recipe's embedded init image and mask when there are any, else the PNG itself."""
    sources = tab.sources
    if "image" not in sources:
        return {}
    init = images.get("init_image")
    updates: dict[Any, Any] = {sources["image"]: decode_image(init) if isinstance(init, str) else str(png)}
    mask = images.get("mask")
    if "mask" in sources and isinstance(mask, str):
        updates[sources["mask"]] = decode_image(mask)
    if "area" in sources:
        updates[sources["area"]] = INPAINT_AREAS[int(bool(values.get("inpaint_full_res")))]
    if "invert" in sources:
        updates[sources["invert"]] = bool(values.get("inpainting_mask_invert"))
    return updates
