"""What a job gives back, as plain frozen records (no torch): the web routes, the UI and the Ray
ingress read these without importing the engine."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from studio.checkpoints.catalog import ModelEntry
from studio.records import storage
from studio.request import GenerationRequest


@dataclass(frozen=True)
class SavedImage:
    image: Image.Image
    path: Path | None
    infotext: str
    seed: int
    recipe: dict[str, Any]  # the PNG's `studio` chunk, also when the image is not saved
    partial: str = ""  # "12/20": the picture an Interrupt stopped at that step (marked in its infotext)
    grid: bool = False  # A1111's batch grid (return_grid): first in the list, no seed or recipe of its own

    def png_bytes(self) -> bytes:
        """The image as a PNG with both chunks, as it is (or would be) saved."""
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", pnginfo=storage.png_info(self.infotext, None if self.grid else self.recipe))
        return buffer.getvalue()


@dataclass(frozen=True)
class JobResult:
    request: GenerationRequest
    images: list[SavedImage]
    interrupted: bool
    notices: tuple[str, ...] = ()  # e.g. an extension hook that failed (the job still ran)
    skipped: int = 0  # iterations dropped by Engine.skip()


@dataclass(frozen=True)
class Reproduction:
    image: SavedImage  # the regenerated image, with its infotext and recipe
    request: GenerationRequest  # what was run (the image's whole batch)
    warnings: list[str]


@dataclass(frozen=True)
class ModelFacts:
    """What listings and infotext need to know about a model, without its pipeline (on a cluster:
    fetched once from a replica holding it)."""

    entry: ModelEntry
    hash: str
    vae_scale_factor: int
    native_size: int
    scheduler_config: Mapping[str, Any]
    unet_config: Mapping[str, Any]
    text_width: int | None
    dtype: str
    device: str


def time_taken(seconds: float) -> str:
    """A1111's line after each job: "Time taken: 2.3 sec." or "Time taken: 1 min. 4.2 sec."."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"Time taken: {int(minutes)} min. {rest:.1f} sec." if minutes >= 1 else f"Time taken: {rest:.1f} sec."
