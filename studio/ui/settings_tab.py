"""Settings: what this run uses (paths, device, flags). Changed through CLI flags for now."""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.settings import Settings


def build_settings_tab(settings: Settings) -> None:
    gr.Markdown("These settings come from the command line (`python app.py --help`). "
                "They are shown here so you can check what this session uses.")
    gr.JSON(value=settings_summary(settings), label="Current settings", elem_id="settings_json")


def settings_summary(s: Settings) -> dict[str, Any]:
    """The settings to show: paths, device, flags; credentials only as set or off."""
    return {"models_dir": str(s.models_dir), "outputs_dir": str(s.outputs_dir),
            "extensions_dir": str(s.extensions_dir), "device": s.device, "dtype": s.dtype,
            "allow_pickle": s.allow_pickle, "safe_mode": s.safe_mode, "host": s.host, "port": s.port,
            "share": s.share, "auth": "set" if s.auth else "off", "styles_file": str(s.styles_file),
            "live_preview_every": s.live_preview_every, "live_preview_method": s.live_preview_method}
