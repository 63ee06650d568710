"""Image inputs whose non-image uploads are one clear sentence ("not an image: notes.png"), not
Gradio's internal preprocessing error that lists every input component of the event."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from PIL import Image

from studio.ui.errors import shown

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def not_an_image_text(name: str, error: BaseException) -> str:
    reason = "not a picture format Pillow can read" if isinstance(error, Image.UnidentifiedImageError) else str(error)
    return shown(f"not an image: {name} ({reason})")  # an OSError's text may carry the upload's server path


def not_an_image(payload: Any, error: BaseException) -> gr.Error:
    name = getattr(payload, "orig_name", None) or Path(str(getattr(payload, "path", "") or "upload")).name
    return gr.Error(not_an_image_text(name, error), print_exception=False)


def unreadable_image(path: str, name: str) -> str | None:
    """Why the uploaded file is not an image, or None when Pillow can read it."""
    try:
        with Image.open(path) as image:
            image.verify()
    except _DECODE_ERRORS as error:
        return not_an_image_text(name, error)
    return None


C = TypeVar("C", gr.Image, gr.ImageEditor)


def refuse_non_images(component: C) -> C:
    """The component's upload of a non-image becomes one sentence ("not an image: notes.png (...)").
    Wraps the instance's preprocess: a subclass would make Gradio write a .pyi stub at import."""
    convert = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return convert(payload)
        except _DECODE_ERRORS as error:
            raise not_an_image(getattr(payload, "background", None) or payload, error) from error

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def image_input(**kwargs: Any) -> gr.Image:
    return refuse_non_images(gr.Image(**kwargs))


def image_editor_input(**kwargs: Any) -> gr.ImageEditor:
    return refuse_non_images(gr.ImageEditor(**kwargs))
