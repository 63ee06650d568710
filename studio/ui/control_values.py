"""A ControlNet unit's choices and values, from widget values to a ControlUnit (pure functions, no
Gradio events; tested in tests/test_controlnet_ui_units.py). The panel is studio/ui/controlnet.py."""
from __future__ import annotations

from types import ModuleType
from typing import Any, Mapping

from PIL import Image

from studio.control.preprocessors import DEFAULT_MODULE
from studio.request import ControlUnit, RequestError
from studio.ui import pose_editor

DEFAULTS = ControlUnit(enabled=False)
CORE_TYPES = ("canny", "scribble", "pose")
UPLOAD, DRAW, POSE = "Upload", "Draw", "Pose editor"
WHITE_ON_BLACK, BLACK_ON_WHITE = "White on black", "Black on white (inverted)"
AUTO_MODEL = "Automatic"  # the first ControlNet of the unit's type for the loaded model
SKETCH_SIZE = 256  # the scribble canvas, fitted to the generation size by the unit's resize mode
THRESHOLD_RANGE = (1, 255)

# ControlUnit fields with one widget each, and how a widget's value becomes the field's value.
FIELD_TYPES: dict[str, Any] = {
    "enabled": bool, "control_type": str, "threshold_a": float, "threshold_b": float, "weight": float,
    "guidance_start": float, "guidance_end": float, "control_mode": int, "resize_mode": int, "pixel_perfect": bool,
}


# -- pure helpers (tested in tests/test_controlnet_ui_units.py) ----------------------------------------

def control_types(preprocessors: Mapping[str, tuple[Any, str | None]]) -> list[str]:
    """canny, scribble, pose, then any other type a registered preprocessor feeds."""
    extra = sorted({spec.control_type for spec, _ in preprocessors.values()} - {"any", *CORE_TYPES})
    return [*CORE_TYPES, *extra]


def module_choices(preprocessors: Mapping[str, tuple[Any, str | None]], control_type: str) -> list[tuple[str, str]]:
    """(label, module) for the type's preprocessors; unavailable ones say why in their label."""
    return [(name if reason is None else f"{name} (unavailable: {reason})", name)
            for name, (spec, reason) in preprocessors.items() if spec.control_type == control_type]


def default_input(control_type: str, has_pose_editor: bool) -> str:
    if control_type == "scribble":
        return DRAW
    if control_type == "pose" and has_pose_editor:
        return POSE
    return UPLOAD


def default_module(preprocessors: Mapping[str, tuple[Any, str | None]], control_type: str, source: str,
                   canvas: str) -> tuple[bool, str | None]:
    """(preprocessor on, module shown in the dropdown) for a type and an image source: a drawn scribble
    is already the control (or needs `invert` when drawn black on white), a pose is rendered, an
    upload gets the type's default preprocessor."""
    names = [name for _, name in module_choices(preprocessors, control_type)]
    shown = DEFAULT_MODULE.get(control_type) if DEFAULT_MODULE.get(control_type) in names else None
    shown = shown or (names[0] if names else None)
    if source == POSE:
        return False, shown
    if source == DRAW and control_type == "scribble":
        inverted = canvas == BLACK_ON_WHITE and "invert" in names
        return inverted, "invert" if inverted else shown
    return DEFAULT_MODULE.get(control_type, shown) not in (None, "none"), shown


def model_choices(models: list[tuple[str, str]], control_type: str) -> list[str]:
    return [AUTO_MODEL, *(title for title, kind in models if kind == control_type)]


def sketch_background(canvas: str) -> Image.Image:
    color = "black" if canvas != BLACK_ON_WHITE else "white"
    return Image.new("RGB", (SKETCH_SIZE, SKETCH_SIZE), color)


def sketch_image(editor: Mapping[str, Any] | None, canvas: str) -> Image.Image | None:
    """The drawing flattened over the canvas colour (what the brush painted, RGB)."""
    if not editor:
        return None
    composite = editor.get("composite")
    if composite is None:
        return None
    flat = sketch_background(canvas).resize(composite.size)
    flat.paste(composite.convert("RGBA"), mask=composite.convert("RGBA").getchannel("A"))
    return flat


def unit_image(values: Mapping[str, Any], width: int, height: int, tools: ModuleType | None) -> Image.Image | None:
    """The unit's own image; None means the tab's source image (img2img/inpaint)."""
    source = values.get("input") or UPLOAD
    if source == DRAW:
        drawn = sketch_image(values.get("sketch"), values.get("canvas") or WHITE_ON_BLACK)
        if drawn is None:
            raise RequestError("ControlNet: draw a scribble on the canvas first")
        return drawn
    if source == POSE:
        if tools is None:
            raise RequestError("the pose editor is not available")
        return pose_editor.render(tools, values.get("pose") or "", width, height)
    if values.get("use_source"):
        return None
    return values.get("upload")


def unit_from_values(values: Mapping[str, Any], width: int, height: int,
                     tools: ModuleType | None = None) -> ControlUnit:
    """One unit's widget values, by name, to a ControlUnit."""
    fields = {name: convert(values[name]) for name, convert in FIELD_TYPES.items() if values.get(name) is not None}
    model = values.get("model")
    return ControlUnit(
        **fields,
        image=unit_image(values, width, height, tools),
        module=(values.get("module") or "none") if values.get("preprocess") else "none",
        model=None if model in (None, "", AUTO_MODEL) else model,
    )


# -- the Gradio panel ---------------------------------------------------------------------------------
