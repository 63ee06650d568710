"""Read generation parameters from a PNG: our `studio` recipe first, else A1111 infotext."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from PIL import UnidentifiedImageError

from studio.errors import StudioError
from studio.images import decode_image
from studio.records import infotext, storage
from studio.request import IMAGE_FIELDS, ControlUnit, GenerationRequest


def read_generation_info(path: Path) -> dict[str, Any]:
    """{"infotext": raw A1111 text, "params": parsed infotext, "fields": request fields,
    "recipe": our exact recipe or None, "chunks": every text chunk}."""
    try:
        chunks = storage.read_png_text(path)
    except (UnidentifiedImageError, OSError) as error:
        raise StudioError(f"{path.name} is not an image that can be read: {error}") from error
    text = chunks.get(storage.PARAMETERS_KEY, "")
    params = infotext.parse_infotext(text) if text else {}
    recipe = _recipe(chunks.get(storage.STUDIO_KEY))
    warnings: list[str] = []
    if recipe is not None:
        fields = valid_fields(recipe["request"], warnings)
        fields["seed"] = fields.get("seed", 0) + _index(recipe, fields, warnings)
        fields["batch_size"], fields["n_iter"] = 1, 1
        fields.pop("styles", None)  # the recipe's prompts are already styled: selecting them would style twice
    else:
        fields = infotext.params_to_request_fields(params) if params else {}
    return {"infotext": text, "params": params, "fields": fields, "recipe": recipe, "chunks": chunks,
            "warnings": warnings}


def valid_fields(raw: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The recipe's request fields that make a valid request, in field order; each field that
    does not (wrong type, out of range, undecodable image) is left out with a warning. A PNG is
    untrusted: nothing unchecked is copied into a form."""
    known = [f.name for f in dataclasses.fields(GenerationRequest) if f.name in raw]
    try:
        GenerationRequest.from_dict({name: raw[name] for name in known}).validate()
        return {name: raw[name] for name in known}
    except _INVALID:
        pass
    decoded: dict[str, Any] = {}  # images decoded once, then reused while checking field by field
    kept: dict[str, Any] = {}
    for name in known:
        try:
            value = _decoded(name, raw[name])
            GenerationRequest.from_dict({**decoded, name: value}).validate()
        except _INVALID as error:
            warnings.append(f"left out the recipe's {name}: {_short(error)}")
            continue
        decoded[name], kept[name] = value, raw[name]
    return kept


_INVALID = (ValueError, TypeError, AttributeError, KeyError, OverflowError, RecursionError)


def _decoded(name: str, value: Any) -> Any:
    if name in IMAGE_FIELDS and isinstance(value, str):
        return decode_image(value, name)
    if name == "controlnet_units" and isinstance(value, list):
        return tuple(ControlUnit.from_dict(unit) for unit in value)
    return value


def _index(recipe: dict[str, Any], fields: dict[str, Any], warnings: list[str]) -> int:
    index = recipe.get("index", 0)
    total = fields.get("batch_size", 1) * fields.get("n_iter", 1)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < total:
        warnings.append(f"left out the recipe's index {str(index)[:40]}: not an image of its run of {total}")
        return 0
    return index


def _short(error: BaseException, limit: int = 200) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _recipe(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("request"), dict) else None
