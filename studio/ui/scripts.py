"""The Script panel of a generation tab (A1111's "Script" dropdown): pick a script registered by an
extension and set its options; Generate then runs it on the tab's settings (see generation.py) and
its images go to the tab's gallery."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr

if TYPE_CHECKING:
    from studio.api import ScriptResult
    from studio.service.extensions.hooks import GuardedScript
    from studio.service.extensions.service import ExtensionService

NONE = "None"
_SEED = re.compile(r"(?:^|,\s*)Seed:\s*(-?\d+)")


@dataclass
class ScriptPanel:
    choice: gr.Dropdown
    scripts: dict[str, GuardedScript]
    widgets: dict[str, dict[str, gr.components.Component]]  # script title -> its widgets by name

    @property
    def inputs(self) -> set[gr.components.Component]:
        return {self.choice, *(w for own in self.widgets.values() for w in own.values())}

    def selected(self, values: dict[Any, Any]) -> GuardedScript | None:
        return self.scripts.get(values.get(self.choice) or NONE)

    def run(self, script: "GuardedScript", values: dict[Any, Any], request: Any,
            progress: Callable[[float, str], None], notify: Callable[[str], None]) -> "ScriptResult":
        own = {name: values.get(widget) for name, widget in self.widgets[script.title].items()}
        return script.run(request, own, progress, notify)


def build_script_panel(extensions: "ExtensionService", name: str) -> ScriptPanel | None:
    scripts = {script.title: script for script in extensions.scripts()}
    if not scripts:
        return None
    with gr.Accordion("Script", open=True, elem_id=f"{name}_script_panel"):
        choice = gr.Dropdown([NONE, *scripts], value=NONE, label="Script", elem_id=f"{name}_script",
                             interactive=True)
        groups, widgets = {}, {}
        for title, script in scripts.items():
            with gr.Group(visible=False, elem_classes="script-options") as groups[title]:
                widgets[title] = _build_options(script)

    def select(title: str) -> dict[Any, Any]:
        return {group: gr.Group(visible=title == shown) for shown, group in groups.items()}

    choice.change(select, inputs=choice, outputs=list(groups.values()), queue=False)
    return ScriptPanel(choice, scripts, widgets)


def script_outputs(result: "ScriptResult") -> tuple[list[tuple[Any, str]], list[str], list[int], list[str]]:
    """(gallery items, infotexts, seeds, saved paths) of a script's output."""
    images = [(str(image) if isinstance(image, Path) else image, caption) for image, caption in result.images]
    texts = list(result.infotexts)
    seeds = [int(match.group(1)) if (match := _SEED.search(text.split("\n")[-1])) else -1 for text in texts]
    paths = [item for item, _ in images if isinstance(item, str)]
    return images, texts, seeds, paths


def _build_options(script: "GuardedScript") -> dict[str, gr.components.Component]:
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
