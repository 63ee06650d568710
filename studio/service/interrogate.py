"""/sdapi/v1/interrogate: A1111's CLIP interrogator when a transformers CLIP model folder is under
models/interrogate/ (studio/prompting/interrogate.py ranks the category lists with it); refused,
naming the folder to place, when none is. DeepBooru's model is not supported here."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from PIL import Image

from studio.errors import StudioError
from studio.settings import Settings

DEEPBOORU_FILE = "models/torch_deepdanbooru/model-resnet_custom_v3.pt"
MODELS = ("clip", "deepdanbooru")


class InterrogatorUnavailable(StudioError):
    """The interrogator's model is not here (the edges answer 501 with the message)."""


def interrogate_dir(settings: Settings) -> Path:
    return settings.models_dir / "interrogate"


def clip_folder(settings: Settings) -> Path | None:
    """The first folder under models/interrogate/ holding a transformers CLIPModel (config.json model_type "clip")."""
    root = interrogate_dir(settings)
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("model_type") == "clip":
            return folder
    return None


def lists_dir(settings: Settings) -> Path:
    """The user's *.txt lists in models/interrogate/ (A1111's interrogate/ files), else the shipped ones."""
    root = interrogate_dir(settings)
    if root.is_dir() and any(root.glob("*.txt")):
        return root
    return Path(__file__).resolve().parent.parent / "prompting" / "interrogate_lists"


def interrogate(settings: Settings, image: Image.Image, model: str = "clip") -> str:
    if model == "deepdanbooru":
        raise InterrogatorUnavailable(f"interrogate is not available for deepdanbooru: its model ({DEEPBOORU_FILE}) "
                                      "cannot run here; use model \"clip\"")
    folder = clip_folder(settings)
    if folder is None:
        raise InterrogatorUnavailable(
            f"interrogate needs a CLIP model: place a transformers CLIPModel folder (config.json, model.safetensors "
            f"and its tokenizer files, e.g. openai/clip-vit-large-patch14) under {interrogate_dir(settings)}/ "
            "(nothing is downloaded; no caption model runs here, the answer is the ranked category lists)")
    # imported on first use: the web layer reaches this module without torch
    return importlib.import_module("studio.prompting.interrogate").interrogate(image, folder, lists_dir(settings))
