"""Generation presets: JSON files in presets/ holding GenerationRequest fields (plus a description)."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from studio.request import GenerationRequest, RequestError
from studio.settings import PROJECT_DIR

PRESETS_DIR = PROJECT_DIR / "presets"
_FIELDS = {f.name for f in fields(GenerationRequest)}


def load_presets(directory: Path = PRESETS_DIR) -> dict[str, dict[str, Any]]:
    """Preset name (file stem) -> request fields. A broken file raises with its name."""
    presets: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        presets[path.stem] = read_preset(path)
    return presets


def read_preset(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RequestError(f"preset {path.name} is not valid JSON: {error}") from error
    unknown = set(data) - _FIELDS - {"description"}
    if unknown:
        raise RequestError(f"preset {path.name} has unknown fields: {', '.join(sorted(unknown))}")
    values = {k: v for k, v in data.items() if k != "description"}
    GenerationRequest(**values).validate()  # a preset must itself be a valid request
    return values
