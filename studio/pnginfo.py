"""Read generation parameters from a PNG: our `studio` recipe first, else A1111 infotext."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from studio import infotext, storage
from studio.errors import StudioError


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
    if recipe is not None:
        fields = dict(recipe["request"])
        seed, index = fields.get("seed", 0), recipe.get("index", 0)
        if not (_whole(seed) and _whole(index)):
            raise StudioError(f"the studio recipe in {path.name} is damaged: its seed ({seed!r}) and index "
                              f"({index!r}) must be whole numbers")
        fields["seed"] = seed + index
        fields["batch_size"], fields["n_iter"] = 1, 1
        fields.pop("styles", None)  # the recipe's prompts are already styled: selecting them would style twice
    else:
        fields = infotext.params_to_request_fields(params) if params else {}
    return {"infotext": text, "params": params, "fields": fields, "recipe": recipe, "chunks": chunks}


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
