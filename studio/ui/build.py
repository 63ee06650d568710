"""Assemble the Blocks: model picker on top, one tab per mode, PNG Info and Settings."""
from __future__ import annotations

import gradio as gr

from studio.ui.context import UiContext
from studio.ui.pnginfo import build_pnginfo_tab, wire_send
from studio.ui.settings_tab import build_settings_tab
from studio.ui.txt2img import build_txt2img_tab

# Ctrl+Enter (Cmd+Enter) clicks the Generate button of the visible tab, as in A1111.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.key !== 'Enter') return;
  const button = [...document.querySelectorAll('button[id$="_generate"]')].find((b) => b.offsetParent !== null);
  if (button) { event.preventDefault(); button.click(); }
});
</script>
"""
CSS = """
#txt2img_generate { min-height: 5em; }
.studio-title { margin: 0; }
"""


def build_ui(ctx: UiContext) -> gr.Blocks:
    with gr.Blocks(title="Diffusion Studio") as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("## Diffusion Studio", elem_classes="studio-title")
            model = gr.Dropdown(ctx.model_titles(), value=ctx.current_model(), label="Stable Diffusion checkpoint",
                                elem_id="model_checkpoint", scale=3)
            refresh = gr.Button("🔄", elem_id="refresh_models", scale=0, min_width=50)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                txt2img = build_txt2img_tab(ctx, model)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                send, fields = build_pnginfo_tab(ctx)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                build_settings_tab(ctx)

        def switch_model(title: str, progress: gr.Progress = gr.Progress()) -> tuple:
            progress(0, desc=f"Loading {title}…")
            try:
                loaded = ctx.load_model(title)
            except ctx.error_types as error:
                # The previous model keeps working: put the dropdown back on it and say why.
                gr.Warning(f"Could not switch model: {error}")
                loaded = ctx.current_model()
            size = ctx.native_size()
            return gr.Dropdown(value=loaded), size, size

        form = txt2img.form
        model.input(switch_model, inputs=model, outputs=[model, form.widgets["width"], form.widgets["height"]],
                    concurrency_id="generation", concurrency_limit=1)
        refresh.click(lambda: gr.Dropdown(choices=ctx.model_titles()), outputs=model, queue=False)
        wire_send(send, fields, form, tabs, "txt2img", prepare=lambda f: {k: v for k, v in f.items() if k != "model"})
    return demo
