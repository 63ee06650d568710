"""Few-step models recognised from what their files say (issue 26 §2): LCM, TCD, Hyper-SD, Turbo and
Lightning LoRAs and checkpoints each want their own sampler, step count and CFG (`presets/`).

A file is read for its name and its safetensors metadata (kohya's `ss_*` keys, `modelspec.*`), a
diffusers folder for its name and its scheduler class; the first preset whose `matches` words occur
wins, more specific families first (Hyper-SD and TCD LoRAs mention LCM-like words, "turbo" is short).
A step count in the name ("Hyper-SD15-8steps", "sdxl_lightning_2step") overrides the preset's.
Torch-free: the UI asks on every model or prompt change.
"""
from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.settings import Settings

ORDER = ("tcd", "hyper-sd", "lightning", "turbo", "lcm")  # most specific first
METADATA_KEYS = ("ss_output_name", "ss_training_comment", "ss_sd_model_name", "ss_base_model_version",
                 "modelspec.title", "modelspec.description", "modelspec.architecture", "modelspec.implementation")
MAX_HEADER = 64 * 1024 * 1024
_STEPS = re.compile(r"(\d{1,2})[-_ ]?steps?\b", re.IGNORECASE)
_LORA_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Recognised:
    preset: str  # a file stem in presets/
    values: dict[str, Any]  # the request fields to apply (the preset's, steps from the name)
    source: str  # what said so: "LoRA lcm-lora-sdv1-5 (ss_output_name)", "model ..."

    def message(self) -> str:
        return (f"Few-step model recognised ({self.source}): preset {self.preset!r} — "
                f"{self.values['sampler_name']}, {self.values['steps']} steps, CFG {self.values['cfg_scale']:g}")


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a .safetensors header ({} for other files or an unreadable header)."""
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > MAX_HEADER:
                return {}
            header = json.loads(handle.read(size))
    except (OSError, ValueError, struct.error):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def describe(path: Path) -> dict[str, str]:
    """What a model or LoRA says about itself: its name, its metadata, a folder's scheduler class."""
    said = {"name": path.stem if path.is_file() else path.name}
    metadata = safetensors_metadata(path)
    said.update({key: metadata[key][:2000] for key in METADATA_KEYS if key in metadata})
    index = path / "model_index.json"
    if path.is_dir() and index.is_file():
        try:
            said["scheduler"] = str(json.loads(index.read_text()).get("scheduler", ["", ""])[1])
        except (OSError, ValueError, IndexError, AttributeError):
            pass
    return said


def recognise_said(said: Mapping[str, str], presets: Mapping[str, Mapping[str, Any]],
                   matches: Mapping[str, list[str]], what: str) -> Recognised | None:
    for name in sorted(presets, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        for key, text in said.items():
            if any(word.lower() in text.lower() for word in matches.get(name, ())):
                values = dict(presets[name])
                steps = _STEPS.search(said.get("name", ""))
                if steps and 1 <= int(steps.group(1)) <= 50:
                    values["steps"] = int(steps.group(1))
                return Recognised(name, values, f"{what} {said.get('name', '')} ({key})")
    return None


def recognise(settings: Settings, prompt: str = "", model: str | None = None) -> Recognised | None:
    """The few-step preset the prompt's LoRAs or the model call for, or None."""
    from studio.checkpoints.catalog import discover_models
    from studio.networks.discovery import discover_loras
    from studio.service.presets import load_presets, preset_matches

    presets, matches = load_presets(), preset_matches()
    loras = {entry.name: entry.path for entry in discover_loras(settings)}
    for name in _LORA_TAG.findall(prompt or ""):
        if (path := loras.get(name.strip())) is not None:
            found = recognise_said(describe(path), presets, matches, "LoRA")
            if found:
                return found
    if model:
        entry = next((e for e in discover_models(settings) if model in (e.title, Path(e.title).stem)), None)
        if entry is not None:
            return recognise_said(describe(entry.path), presets, matches, "model")
    return None
