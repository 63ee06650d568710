"""/sdapi/v1/interrogate: A1111's CLIP interrogator when a transformers CLIP model folder is under
models/interrogate/ (studio/prompting/interrogate.py ranks the category lists with it), with a
caption first when a transformers BLIP folder is under models/BLIP/; refused, naming the folder to
place, when there is no CLIP model. DeepBooru's model is not supported here."""
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
    return _model_folder(interrogate_dir(settings), "clip")


def blip_folder(settings: Settings) -> Path | None:
    """The first transformers BLIP captioning folder under models/BLIP/ (A1111's BLIP folder)."""
    return _model_folder(settings.models_dir / "BLIP", "blip")


def _model_folder(root: Path, model_type: str) -> Path | None:
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("model_type") == model_type:
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
            "(nothing is downloaded; a transformers BLIP folder under models/BLIP/ adds a caption)")
    # imported on first use: the web layer reaches this module without torch
    run = importlib.import_module("studio.prompting.interrogate").interrogate
    try:
        return run(image, folder, lists_dir(settings), blip_folder=blip_folder(settings))
    except (OSError, ValueError, RuntimeError, KeyError) as error:  # a partial or broken model folder
        raise InterrogatorUnavailable(f"interrogate could not load its models ({folder.name}): "
                                      f"{str(error).splitlines()[0][:300]}") from error
