"""Settings: A1111's editable page over the options store (the same keys as /sdapi/v1/options), and
what this run was started with (paths, device, flags; changed through CLI flags)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import gradio as gr

from studio.errors import StudioError
from studio.request import RequestError
from studio.settings import Settings

if TYPE_CHECKING:
    from studio.service.options import OptionsService


Loader = tuple[Callable[[], list[Any]], list[gr.components.Component]]


def build_settings_tab(settings: Settings, options: "OptionsService | None" = None) -> Loader | None:
    """The page; returns what a page load runs to show the store's current values (the API may have changed them)."""
    loader = _build_options(options) if options is not None else None
    with gr.Accordion("This run (command-line flags)", open=True):
        gr.Markdown("These settings come from the command line (`python -m studio serve --help`). "
                    "They are shown here so you can check what this session uses.")
        gr.JSON(value=settings_summary(settings), label="Current settings", elem_id="settings_json")
    return loader


def _build_options(options: "OptionsService") -> Loader:
    """One widget per option, grouped by A1111's sections; Apply checks them all and saves config.json."""
    values = options.values()
    widgets: dict[str, gr.components.Component] = {}
    with gr.Row():
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
        gr.Markdown(f"Saved in `{options.path}`; applied to the next job without a restart."
                    + (" On this shared server only the operator changes server-wide settings." if options.shared else ""))
    result = gr.Markdown("", elem_id="settings_result")
    # Filled by the page load with an empty span: the fields below hold the store's values from then on
    # (what a script or a test waits for before editing, so the load does not overwrite its edits).
    loaded = gr.HTML("", elem_id="settings_loaded", padding=False)
    sections: dict[str, list[str]] = {}
    for key, option in options.table.items():
        sections.setdefault(option.section, []).append(key)
    for section, keys in sections.items():
        with gr.Group():
            gr.Markdown(f"### {section}")
            for key in keys:
                widgets[key] = _widget(key, options.table[key], values[key])
    if options.networks is not None:
        with gr.Group():
            gr.Markdown("### VAE")
            widgets["sd_vae"] = gr.Dropdown(options.networks.vae_names(), value=values.get("sd_vae"),
                                            label="SD VAE", elem_id="setting_sd_vae")
    names = list(widgets)

    def apply_settings(*given: Any) -> str:
        changes = {name: _value(options, name, value) for name, value in zip(names, given)}
        try:
            changed = options.update(changes, operator=not options.shared)
        except (RequestError, StudioError) as error:
            return f"**Not applied:** {error}"
        return f"{len(changed)} settings changed: {', '.join(changed)}." if changed else "No setting changed."

    apply.click(apply_settings, inputs=[widgets[n] for n in names], outputs=result, queue=False)

    def current() -> list[Any]:
        now = options.values()
        return [now.get(name) for name in names] + ['<span class="settings-loaded"></span>']

    return current, [widgets[n] for n in names] + [loaded]


def _widget(key: str, option: Any, value: Any) -> gr.components.Component:
    elem_id = f"setting_{key}"
    if isinstance(option.default, bool):
        return gr.Checkbox(value=value, label=option.label, elem_id=elem_id)
    if option.choices:
        return gr.Dropdown(list(option.choices), value=value, label=option.label, elem_id=elem_id)
    if isinstance(option.default, (int, float)):
        return gr.Number(value=value, label=option.label, elem_id=elem_id)
    return gr.Textbox(value=value, label=option.label, elem_id=elem_id)


def _value(options: "OptionsService", key: str, value: Any) -> Any:
    """Gradio's Number gives floats: whole-number options get an int when the value is whole."""
    option = options.table.get(key)
    if option is not None and isinstance(option.default, int) and not isinstance(option.default, bool) \
            and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def settings_summary(s: Settings) -> dict[str, Any]:
    """The settings to show: paths, device, flags; credentials only as set or off."""
    return {"models_dir": str(s.models_dir), "outputs_dir": str(s.outputs_dir),
            "extensions_dir": str(s.extensions_dir), "device": s.device, "dtype": s.dtype,
            "allow_pickle": s.allow_pickle, "safe_mode": s.safe_mode, "host": s.host, "port": s.port,
            "share": s.share, "auth": "set" if s.auth else "off", "styles_file": str(s.styles_file),
            "live_preview_every": s.live_preview_every, "live_preview_method": s.live_preview_method}
