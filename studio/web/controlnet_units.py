"""sd-webui-controlnet's unit dicts (`alwayson_scripts.controlnet.args`) -> ControlUnits, by field name.
Errors name the unit by its position in `args`."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from PIL import Image
from pydantic import ValidationError

from studio.control.catalog import ControlNetEntry
from studio.control.preprocessors import AnnotatorDirs, PreprocessorSpec
from studio.images import decode_image
from studio.request import CONTROL_MODES, CONTROL_RESIZE_MODES, ControlUnit, RequestError
from studio.web.checkpoints import split_title
from studio.web.errors import error_message
from studio.web.schemas import ControlNetUnitArgs

if TYPE_CHECKING:
    from studio.service.control import ControlService

_RESIZE_ALIASES = {  # older sd-webui-controlnet names
    "Inner Fit (Scale to Fit)": "Crop and Resize", "Scale to Fit (Inner Fit)": "Crop and Resize",
    "Outer Fit (Shrink to Fit)": "Resize and Fill", "Envelope (Outer Fit)": "Resize and Fill",
}


def controlnet_units(scripts: dict[str, Any] | None, control: "ControlService", model_title: str | None,
                     has_source: bool) -> tuple[ControlUnit, ...]:
    """The enabled units of `alwayson_scripts.controlnet.args`; disabled ones are dropped."""
    args = _controlnet_args(scripts or {})
    if not args:
        return ()
    entries = control.entries(model_title)
    preprocessors = control.preprocessors()
    units = []
    for index, arg in enumerate(args):
        unit = to_control_unit(arg, index, entries, preprocessors)
        if unit is not None:
            unit.validate(index, has_source=has_source)
            units.append(unit)
    return tuple(units)


def _controlnet_args(scripts: dict[str, Any]) -> list[Any]:
    script = next((value for name, value in scripts.items() if name.lower() == "controlnet"), None)
    if script is None:
        return []
    args = script.get("args") if isinstance(script, dict) else None
    if not isinstance(args, list):
        raise RequestError('alwayson_scripts.controlnet must be {"args": [unit, ...]}')
    return args


def to_control_unit(arg: Any, index: int, entries: list[ControlNetEntry],
                    preprocessors: Mapping[str, PreprocessorSpec]) -> ControlUnit | None:
    where = f"ControlNet unit {index}"
    if arg is None:
        return None
    if not isinstance(arg, dict):
        raise RequestError(f"{where}: each item of alwayson_scripts.controlnet.args must be an object")
    try:
        parsed = ControlNetUnitArgs.model_validate(arg)
    except ValidationError as error:
        raise RequestError(f"{where}: {error_message(error.errors())}") from error
    if not parsed.enabled:
        return None
    if parsed.advanced_weighting is not None:
        raise RequestError(f"{where}: advanced_weighting is not supported")
    model = _controlnet_model(parsed.model, entries, where)
    module = _module(parsed.module, where, preprocessors)
    image, mask = _unit_image(parsed, where)
    values: dict[str, Any] = {
        "control_type": _control_type(model, module, where, preprocessors),
        "image": image,
        "mask": mask,
        "module": module,
        "model": model.title if model is not None else None,
        "weight": parsed.weight,
        "guidance_start": parsed.guidance_start,
        "guidance_end": parsed.guidance_end,
        "control_mode": _choice(parsed.control_mode, CONTROL_MODES, {}, f"{where} control_mode"),
        "resize_mode": _choice(_latent_resize_as_just_resize(parsed.resize_mode), CONTROL_RESIZE_MODES,
                               _RESIZE_ALIASES, f"{where} resize_mode"),
        "pixel_perfect": parsed.pixel_perfect,
    }
    spec = preprocessors[module]
    for name, default in (("threshold_a", spec.range_a[2]), ("threshold_b", spec.range_b[2])):
        values[name] = getattr(parsed, name) if getattr(parsed, name) >= 0 else default  # negative: the module's default
    return ControlUnit(**values)


def _controlnet_model(name: str | None, entries: list[ControlNetEntry], where: str) -> ControlNetEntry | None:
    """A title from /controlnet/model_list, with or without " [hash]", or a file name without extension."""
    if name is None or name.strip() in ("", "None", "none"):
        return None
    wanted = split_title(name)[0].lower()
    for entry in entries:
        if wanted in (entry.title.lower(), Path(entry.title).stem.lower()):
            return entry
    available = ", ".join(entry.title for entry in entries) or "none"
    raise RequestError(f"{where}: ControlNet model {name[:200]!r} not found; available: {available}")


def _module(name: str, where: str, preprocessors: Mapping[str, PreprocessorSpec]) -> str:
    for candidate in (name, name.lower()):
        if candidate in preprocessors:
            return candidate
    raise RequestError(f"{where}: unknown module {name[:100]!r}; choose one of: {', '.join(preprocessors)}")


def _control_type(model: ControlNetEntry | None, module: str, where: str,
                  preprocessors: Mapping[str, PreprocessorSpec]) -> str:
    """From the model's title first (canny/scribble/pose), else from what the module feeds."""
    if model is not None and model.control_type != "other":
        return model.control_type
    fed = preprocessors[module].control_type
    if fed != "any":
        return fed
    if model is not None:
        return model.control_type
    raise RequestError(f"{where}: name a model (see /controlnet/model_list) or a module other than 'none', "
                       "so that the control type is known")


def _unit_image(parsed: ControlNetUnitArgs, where: str) -> tuple[Image.Image | None, Image.Image | None]:
    """(image, mask): the mask comes in the image dict (`{"image", "mask"}`) or as `mask`/`mask_image`;
    it marks inpaint_only's area to repaint."""
    image: Any = parsed.image if parsed.image is not None else parsed.input_image
    mask: Any = parsed.mask or parsed.mask_image
    if isinstance(image, dict):
        mask = image.get("mask") or mask
        image = image.get("image")
    return _decoded(image, f"{where} image"), _decoded(mask, f"{where} mask")


def _decoded(value: Any, name: str) -> Image.Image | None:
    if not value:
        return None  # an image: img2img/inpaint use the source image; a mask: the inpaint mask, if any
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a base64 image")
    return decode_image(value.strip(), name)


def _choice(value: int | str, names: tuple[str, ...], aliases: dict[str, str], field: str) -> int:
    """An index, or one of the names (any case) sd-webui-controlnet shows."""
    if isinstance(value, int):
        if 0 <= value < len(names):
            return value
        raise RequestError(f"{field} must be 0 to {len(names) - 1} (got {value})")
    lowered = {name.lower(): i for i, name in enumerate(names)}
    name = aliases.get(value, value).lower()
    if name in lowered:
        return lowered[name]
    if value.isdigit() and len(value) < 6:
        return _choice(int(value), names, aliases, field)
    raise RequestError(f"{field} must be 0 to {len(names) - 1} or one of: {', '.join(names)} (got {value[:100]!r})")


def _latent_resize_as_just_resize(value: int | str) -> int | str:
    """A1111's img2img resize_mode 3 ("Just Resize (Latent upscale)") is Just Resize for a control image."""
    return 0 if value == 3 else value


def module_detail(spec: PreprocessorSpec, annotators: AnnotatorDirs) -> dict[str, Any]:
    """sd-webui-controlnet's module_detail entry (model_free, threshold sliders with their ranges), plus
    why a detector is unavailable when its weights are missing (null when it is available)."""
    sliders = [{"name": label, "value": rng[2], "min": rng[0], "max": rng[1]}
               for label, rng in ((spec.threshold_a, spec.range_a), (spec.threshold_b, spec.range_b)) if label]
    return {"model_free": spec.weights is None, "sliders": sliders,
            "unavailable": spec.unavailable_reason(annotators)}
