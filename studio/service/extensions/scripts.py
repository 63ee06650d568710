"""Run a script an extension registered, by name, outside the UI: A1111's `script_name` /
`script_args` of /sdapi/v1/txt2img and /img2img.

The script's `api_args` turns the positional `script_args` into its values; the script runs on the
studio's one generation entry (hooks run, every image is saved); its output images (a grid and
its cells, for X/Y/Z plot) come back as one JobResult-like `ScriptJob`, in the script's order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from studio.api import ExtensionContext
from studio.records.pnginfo import read_generation_info
from studio.request import GenerationRequest, RequestError
from studio.service.extensions.loading import ExtensionError
from studio.service.extensions.manager import ExtensionManager
from studio.service.results import SavedImage

_SEED = re.compile(r"(?:^|,\s*)Seed:\s*(-?\d+)", re.M)


class ScriptRequestError(RequestError):
    """`script_name` names no script that runs from the API, or its `script_args` are wrong."""


@dataclass(frozen=True)
class ScriptJob:
    """What a script run gives back, shaped like jobs.JobResult (request, images, interrupted, notices)."""

    request: GenerationRequest  # the request the script started from
    images: list[SavedImage]
    interrupted: bool
    notices: tuple[str, ...] = ()
    note: str = ""
    skipped: int = 0


def run_script(extensions: ExtensionManager, context_for: Callable[..., ExtensionContext], request: GenerationRequest,
               script_name: str, script_args: Sequence[Any] = (),
               interrupted: Callable[[], bool] = lambda: False) -> ScriptJob:
    """Run the script titled `script_name` on `request` with A1111's positional `script_args`.
    ScriptRequestError (a 4xx at the edge) for an unknown script or bad arguments. `context_for(progress,
    notify)` makes the script's context; `interrupted()`: whether its last job was interrupted."""
    notices: list[str] = []

    def context(progress: Any = lambda fraction, desc: None, notify: Any = None) -> Any:
        return context_for(progress, notices.append)  # hook notices come back with the job

    try:
        script, spec = extensions.script_for_api(script_name, context)
        assert spec.api_args is not None
        values = spec.api_args(list(script_args or ()), request)
    except (ExtensionError, ValueError, OverflowError, TypeError, IndexError) as error:
        raise ScriptRequestError(f"script_args: {error}" if not isinstance(error, ExtensionError)
                                 else f"script_name: {error}") from error
    try:
        result = script.run(request.validate(), values, notify=notices.append)
    except RequestError:
        raise
    except (ValueError, OverflowError) as error:  # the script's own check of its values (axis values, ...)
        raise ScriptRequestError(f"script_args: {error}") from error
    images = [_saved(item, text) for (item, _caption), text in zip(result.images, result.infotexts)]
    return ScriptJob(request, images, interrupted(), tuple(notices), result.note)


def _saved(item: Image.Image | Path | str, text: str) -> SavedImage:
    """A script's output image (a saved path or an image) as a SavedImage; the recipe of a saved
    PNG comes from its `studio` chunk."""
    path = Path(item) if isinstance(item, (str, Path)) else None
    recipe: dict[str, Any] = {}
    if path is not None:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        recipe = read_generation_info(path).get("recipe") or {}
    else:
        image = item
    match = _SEED.search(text.split("\n")[-1] if text else "")
    return SavedImage(image, path, text, int(match.group(1)) if match else -1, recipe)
