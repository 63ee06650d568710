"""The Script panel under a generation tab (A1111's "Script" dropdown): pick a script registered
by an extension, set its options, run it on the tab's current settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from studio.ui.context import ScriptLike, UiContext
from studio.ui.errors import user_errors
from studio.ui.generation import GenerationTab

NONE = "None"


def build_script_panel(ctx: UiContext, tab: GenerationTab) -> None:
    scripts = {script.title: script for script in ctx.scripts()}
    if not scripts:
        return
    # The tab's whole request (ControlNet units, mask layers) once GenerationTab exposes how it builds
    # it; until then the form's fields, which are the whole request for txt2img and img2img.
    to_request = getattr(tab, "to_request", tab.form.to_request)
    request_inputs = set(getattr(tab, "request_inputs", tab.form.inputs))
    with gr.Accordion("Script", open=True, elem_id=f"{tab.name}_script_panel"):
        choice = gr.Dropdown([NONE, *scripts], value=NONE, label="Script", elem_id=f"{tab.name}_script")
        groups, widgets = {}, {}
        for title, script in scripts.items():
            with gr.Group(visible=False, elem_classes="script-options") as groups[title]:
                widgets[title] = _build_options(script)
        with gr.Column(visible=False) as output:
            run = gr.Button("Run script", variant="primary", elem_id=f"{tab.name}_script_run")
            gallery = gr.Gallery(label="Script output", columns=3, height=360, format="png", object_fit="contain",
                                 interactive=False, elem_id=f"{tab.name}_script_gallery",
                                 elem_classes="studio-output")
            infotext = gr.Textbox(label="Generation parameters", lines=3, interactive=False,
                                  elem_id=f"{tab.name}_script_infotext")
            status = gr.Markdown(elem_id=f"{tab.name}_script_status")
        infotexts = gr.State([])

    def select(title: str) -> list[Any]:
        return [gr.Group(visible=title == name) for name in groups] + [gr.Column(visible=title in scripts)]

    def run_script(values: dict[Any, Any], progress: gr.Progress = gr.Progress()) -> tuple:
        script = scripts.get(values[choice])
        if script is None:
            raise gr.Error("Choose a script first.", print_exception=False)
        own = {name: values.get(widget) for name, widget in widgets[script.title].items()}
        with user_errors(ctx.error_types):
            request = to_request(values)
            result = script.run(request, own, lambda fraction, desc: progress(fraction, desc=desc), gr.Warning)
        images = [(str(image) if isinstance(image, Path) else image, caption) for image, caption in result.images]
        texts = list(result.infotexts)
        return (gr.Gallery(value=images, selected_index=0 if images else None), (texts[0] if texts else ""), texts,
                result.note)

    def on_select(texts: list[str], event: gr.SelectData) -> str:
        index = event.index if isinstance(event.index, int) else 0
        return texts[index] if index < len(texts) else ""

    choice.change(select, inputs=choice, outputs=[*groups.values(), output], queue=False)
    inputs = {choice, *request_inputs, *(w for own in widgets.values() for w in own.values())}
    run.click(run_script, inputs=inputs, outputs=[gallery, infotext, infotexts, status],
              concurrency_id="generation", concurrency_limit=1)
    gallery.select(on_select, inputs=infotexts, outputs=infotext, queue=False)


def _build_options(script: ScriptLike) -> dict[str, gr.components.Component]:
    """The script's widgets by name; an error text in their place when its ui() failed."""
    built = script.build()
    if isinstance(built, str):
        gr.Markdown(f"⚠️ {built}", elem_classes="extension-error")
        return {}
    own = {name: widget for name, widget in built.items() if isinstance(widget, gr.components.Component)}
    if len(own) != len(built):
        gr.Markdown(f"⚠️ Script '{script.title}': ui() returned values that are not Gradio components "
                    f"({', '.join(sorted(set(built) - set(own)))}); they are ignored.", elem_classes="extension-error")
    return own
