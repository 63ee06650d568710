"""Number sliders that say when a typed value is out of range. Gradio's own check raised in
every handler the slider feeds (a traceback in the server log) while the page silently clamped."""
from __future__ import annotations

from typing import Any

import gradio as gr


def _clamp(slider: gr.Slider, value: float) -> float:
    return min(max(value, slider.minimum), slider.maximum)


def out_of_range_text(slider: gr.Slider, value: Any) -> str | None:
    """The message for a typed value outside the slider's range, None when it is inside."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if slider.minimum <= number <= slider.maximum:
        return None
    return (f"{slider.label} {number:g} is outside {slider.minimum:g}–{slider.maximum:g}: "
            f"using {_clamp(slider, number):g}.")


def guard_range(slider: gr.Slider) -> gr.Slider:
    """Clamp an out-of-range value for the handlers (as the page does) and tell the user."""
    check = slider.preprocess

    def preprocess(payload: Any) -> Any:
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            payload = _clamp(slider, payload)
        return check(payload)

    slider.preprocess = preprocess  # type: ignore[method-assign]

    def warn(value: Any) -> None:
        text = out_of_range_text(slider, value)
        if text:
            gr.Warning(text)

    # Queued (so the toast shows) but outside the generation queue: it answers during a run.
    slider.input(warn, inputs=slider, preprocess=False, concurrency_limit=None, show_progress="hidden",
                 concurrency_id=f"range-{slider._id}")
    return slider
