"""What the UI may call: plain callables, so tabs never reach into the engine or diffusers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from studio.request import GenerationRequest


class ProgressLike(Protocol):
    step: int
    steps: int
    image: int
    images: int


class SavedLike(Protocol):
    path: Path | None
    infotext: str
    seed: int


class JobLike(Protocol):
    request: GenerationRequest
    images: list[Any]
    interrupted: bool


@dataclass(frozen=True)
class UiContext:
    submit: Callable[[GenerationRequest, Callable[[ProgressLike], None] | None], JobLike]
    interrupt: Callable[[], None]
    sampler_names: Callable[[], list[str]]
    model_titles: Callable[[], list[str]]
    current_model: Callable[[], str]
    load_model: Callable[[str], str]  # returns the loaded title
    native_size: Callable[[], int]
    read_png: Callable[[Path], dict[str, Any]]  # {"infotext": str, "fields": {...}, "chunks": {...}}
    settings_summary: Callable[[], dict[str, Any]]
    error_types: tuple[type[BaseException], ...] = (ValueError,)
