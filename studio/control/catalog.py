"""ControlNet models: the default model's own (canny, scribble, pose) and models/ControlNet/
(diffusers folders and single .safetensors files), typed from their names like sd-webui-controlnet,
and whether one fits a model, read from configs alone (nothing is loaded here)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from studio.settings import Settings

# Our control type -> words in a model's name that mark it (checked in this order, as sd-webui-controlnet
# filters its model list by name).
TYPE_KEYWORDS = {
    "ip-adapter": ("ip-adapter", "ip_adapter", "ipadapter"),
    "canny": ("canny",), "scribble": ("scribble", "sketch"), "pose": ("openpose", "pose"),
    "depth": ("depth",), "normal": ("normal",), "mlsd": ("mlsd",), "lineart": ("lineart",),
    "softedge": ("softedge", "hed", "pidi"), "seg": ("seg",), "shuffle": ("shuffle",),
    "tile": ("tile", "blur"), "inpaint": ("inpaint",),
}
# Our control type -> sd-webui-controlnet's name for it (/controlnet/control_types, the UI's radio).
TYPE_NAMES = {
    "canny": "Canny", "depth": "Depth", "normal": "NormalMap", "pose": "OpenPose", "mlsd": "MLSD",
    "lineart": "Lineart", "softedge": "SoftEdge", "scribble": "Scribble/Sketch", "seg": "Segmentation",
    "shuffle": "Shuffle", "tile": "Tile/Blur", "inpaint": "Inpaint", "reference": "Reference",
    "ip-adapter": "IP-Adapter",
}
MODEL_FREE_TYPES = ("reference",)  # types that steer the UNet itself, with no ControlNet model


@dataclass(frozen=True)
class ControlNetEntry:
    title: str
    control_type: str  # canny | scribble | pose | other
    location: str
    kind: str  # "diffusers" | "single_file" (an IP-Adapter is always a single .safetensors file)


def control_type_of(name: str) -> str:
    lowered = name.lower()
    for control_type, words in TYPE_KEYWORDS.items():
        if any(word in lowered for word in words):
            return control_type
    return "other"


def discover_controlnets(settings: Settings, base_model_dir: Path | None) -> list[ControlNetEntry]:
    """ControlNets shipped beside the loaded model first (folders named controlnet-*), then models/ControlNet/
    and models/ipadapter/ (where A1111 and Forge keep IP-Adapters: their control type is ip-adapter)."""
    entries: list[ControlNetEntry] = []
    if base_model_dir is not None and base_model_dir.is_dir():
        for folder in sorted(base_model_dir.glob("controlnet-*")):
            if (folder / "config.json").is_file():
                entries.append(ControlNetEntry(folder.name, control_type_of(folder.name), str(folder), "diffusers"))
    root = settings.models_dir / "ControlNet"
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.is_dir() and (path / "config.json").is_file():
                entries.append(ControlNetEntry(path.name, control_type_of(path.name), str(path), "diffusers"))
            elif path.suffix == ".safetensors":
                entries.append(ControlNetEntry(path.name, control_type_of(path.name), str(path), "single_file"))
    adapters = settings.models_dir / "ipadapter"
    if adapters.is_dir():
        entries += [ControlNetEntry(path.name, "ip-adapter", str(path), "single_file")
                    for path in sorted(adapters.glob("*.safetensors"))]
    return entries


# Config keys a ControlNet shares with the UNet it steers: when they differ, its residuals do not fit.
_MATCHING_KEYS = {"cross_attention_dim": "cross-attention width", "block_out_channels": "block widths",
                  "addition_embed_type": "added conditioning (SDXL)"}


def entry_config(entry: ControlNetEntry) -> dict:
    """The ControlNet's diffusers config (a folder's config.json, or a single file's sidecar .json); {} if unreadable."""
    path = Path(entry.location) / "config.json" if entry.kind == "diffusers" else Path(entry.location).with_suffix(".json")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def controlnet_mismatch(entry: ControlNetEntry, unet_config: Mapping[str, Any]) -> str | None:
    """Why this ControlNet cannot steer a UNet with this config (e.g. an SD 2.x ControlNet on an SD 1.x
    model), read from configs alone; None when it fits (or its config says nothing)."""
    config = entry_config(entry)
    for key, label in _MATCHING_KEYS.items():
        if key not in config:
            continue
        mine, theirs = config.get(key), unet_config.get(key)
        if isinstance(mine, list) or isinstance(theirs, (list, tuple)):
            mine, theirs = list(mine or []), list(theirs or [])
        if mine != theirs:
            return f"its {label} is {mine}, the model's is {theirs}"
    return None
