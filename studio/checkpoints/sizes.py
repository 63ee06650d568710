"""Per-family default sizes and A1111-style aspect-ratio presets (no gradio, no torch).

A model's default size is the one it was trained at: its UNet's sample size times the VAE's
scale factor (SD 1.x: 512, SD 2.x 768-v: 768, SD 2.x base: 512, SDXL: 1024). An aspect ratio keeps
about that many pixels: width x height ~ size^2, each side rounded to 64 (to 8 for models trained
below 512), within the request's limits.
"""
from __future__ import annotations

import math

from studio.request import MAX_SIZE, MIN_SIZE

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1), "3:2": (3, 2), "2:3": (2, 3), "4:3": (4, 3), "3:4": (3, 4), "16:9": (16, 9), "9:16": (9, 16),
}
SQUARE = "1:1"


def size_for(native: int, ratio: str) -> tuple[int, int]:
    """(width, height) for a model trained at native x native pixels and an ASPECT_RATIOS name."""
    across, down = ASPECT_RATIOS[ratio]
    step = 64 if native >= 512 else 8
    width = native * math.sqrt(across / down)
    height = native * native / width
    return _side(width, step), _side(height, step)


def _side(value: float, step: int) -> int:
    return int(min(MAX_SIZE, max(MIN_SIZE, round(value / step) * step)))
