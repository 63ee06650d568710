"""controlnet-aux, imported on first use and quietly.

Importing any part of controlnet_aux runs its package __init__, which imports every detector:
that costs seconds and prints a torch.jit FutureWarning, "mediapipe not installed", timm
deprecation warnings and five "Overwriting tiny_vit_* in registry" lines. None of them concern
the studio's use (OpenPose rendering and detection), so they are silenced for that import only.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

_NOISE = (
    (FutureWarning, r".*torch\.jit\.script.*"),
    (FutureWarning, r"Importing from timm\..* is deprecated.*"),
    (UserWarning, r".*mediapipe.*"),
    (UserWarning, r"Overwriting tiny_vit_.* in registry.*"),
)


def import_aux(name: str) -> ModuleType:
    """`controlnet_aux.<...>` module `name`, imported with its known start-up warnings silenced."""
    with warnings.catch_warnings():
        for category, message in _NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        return importlib.import_module(name)
