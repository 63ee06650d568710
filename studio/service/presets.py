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
    unknown = set(data) - _FIELDS - {"description", "matches"}
    if unknown:
        raise RequestError(f"preset {path.name} has unknown fields: {', '.join(sorted(unknown))}")
    values = {k: v for k, v in data.items() if k not in ("description", "matches")}
    GenerationRequest(**values).validate()  # a preset must itself be a valid request
    return values


def preset_matches(directory: Path = PRESETS_DIR) -> dict[str, list[str]]:
    """Preset name -> the words that recognise its model family in file names and metadata
    (`matches` in the preset; studio/service/few_step.py)."""
    matches: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            words = json.loads(path.read_text()).get("matches", [])
        except (OSError, ValueError, AttributeError):
            continue  # load_presets reports a broken file
        if isinstance(words, list) and all(isinstance(word, str) for word in words):
            matches[path.stem] = words
    return matches


def preset_descriptions(directory: Path = PRESETS_DIR) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            out[path.stem] = str(json.loads(path.read_text()).get("description", ""))
        except (OSError, ValueError, AttributeError):
            continue
    return out
