"""What extension code returns, checked before the studio uses it; the guarded tab and script
handles the UI gets; where an extension's own images are saved."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from PIL import Image

from studio.api import (
    ScriptResult,
)
from studio.records import storage
from studio.request import GenerationRequest


@dataclass(frozen=True)
class GuardedTab:
    """An extension tab for the UI: `build()` runs inside the tab, returns an error text or None."""

    title: str
    extension: str
    build: Callable[[], str | None]


@dataclass(frozen=True)
class GuardedScript:
    """A script for the UI: `build()` returns its widgets by name (or an error text); `run` raises
    ExtensionError (attributed) or the script's own ValueError for bad input."""

    title: str
    extension: str
    build: Callable[[], Mapping[str, Any] | str]
    run: Callable[..., ScriptResult]


def save_output(outputs_dir: Path, image: Image.Image, folder: str, infotext: str, seed: int) -> Path:
    """Save an extension's image (e.g. a grid) as outputs/<folder>/<date>/NNNNN-<seed>.png."""
    if not re.fullmatch(r"[\w-]+", folder):
        raise ValueError(f"output folder must be a plain name such as 'txt2img-grids' (got {folder!r})")
    return storage.save_png(image, outputs_dir / folder / datetime.date.today().isoformat(), seed, infotext)


def save_into(directory: Path, image: Image.Image, folder: str, infotext: str, seed: int) -> Path:
    """Save an extension's image straight into `directory` (the command line's --out), whatever its folder."""
    return storage.save_png(image, directory, seed, infotext)


def checked_before(fn: Callable[..., Any], request: GenerationRequest) -> tuple[GenerationRequest, dict[str, Any]] | None:
    out = fn(request)
    if out is None:
        return None
    new, extra = out if isinstance(out, tuple) and len(out) == 2 else (out, {})
    if not isinstance(new, GenerationRequest):
        raise TypeError(f"before_generate returned {type(new).__name__}; expected a GenerationRequest, "
                        "(request, {infotext key: value}) or None")
    return new.validate(), _params(extra)


def checked_before_image(fn: Callable[..., Any], request: GenerationRequest,
                          index: int) -> tuple[GenerationRequest, dict[str, Any]] | None:
    out = checked_before(lambda r: fn(r, index), request)
    if out is not None:
        new = out[0]
        if new.replace(prompt=request.prompt, negative_prompt=request.negative_prompt) != request:
            raise ValueError("before_image may change only the prompt and the negative prompt")
    return out


def checked_after(fn: Callable[..., Any], image: Image.Image,
                   request: GenerationRequest) -> tuple[Image.Image, dict[str, Any]] | None:
    out = fn(image, request)
    if out is None:
        return None
    new, extra = out if isinstance(out, tuple) and len(out) == 2 else (out, {})
    new = image if new is None else new
    if not isinstance(new, Image.Image):
        raise TypeError(f"after_image returned {type(new).__name__}; expected a PIL image, "
                        "(image or None, {infotext key: value}) or None")
    return new, _params(extra)


def _params(extra: Any) -> dict[str, Any]:
    if not isinstance(extra, Mapping):
        raise TypeError(f"infotext keys must come as a dict (got {type(extra).__name__})")
    return {str(key): value for key, value in extra.items()}
