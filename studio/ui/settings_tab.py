"""Settings: what this run uses (paths, device, flags). Changed through CLI flags for now."""
from __future__ import annotations

import gradio as gr

from studio.ui.context import UiContext


def build_settings_tab(ctx: UiContext) -> None:
    gr.Markdown("These settings come from the command line (`python app.py --help`). "
                "They are shown here so you can check what this session uses.")
    gr.JSON(value=ctx.settings_summary(), label="Current settings", elem_id="settings_json")
