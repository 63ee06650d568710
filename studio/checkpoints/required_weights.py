"""Naming the weights a single file lacks, before and after diffusers builds a component from it.

diffusers either says only that a component's weights "appear to be missing" or, worse, builds the
component with empty ("meta") tensors that fail later when the model is placed on its device (a
500 through /options). Both become a ModelError naming the missing weights.
"""
from __future__ import annotations

import itertools
from typing import Any, Collection

# An OpenCLIP text encoder (SDXL's bigG, under conditioner.embedders.N.model.) cannot be built without these.
OPEN_CLIP_REQUIRED = ("text_projection", "token_embedding.weight", "positional_embedding", "ln_final.weight",
                      "ln_final.bias")
OPEN_CLIP_MARK = "model.token_embedding.weight"


def missing_before(keys: Collection[str], class_name: str) -> list[str]:
    """The file's keys a component of `class_name` needs and the file lacks (the layouts known here)."""
    if class_name != "CLIPTextModelWithProjection":
        return []
    prefixes = sorted(key[: -len("token_embedding.weight")] for key in keys
                      if key.startswith("conditioner.embedders.") and key.endswith(OPEN_CLIP_MARK))
    if not prefixes:
        return []
    prefix = prefixes[-1]  # the SDXL base's second encoder (embedders.1); the refiner's only one (embedders.0)
    return [prefix + suffix for suffix in OPEN_CLIP_REQUIRED if prefix + suffix not in keys]


def missing_after(model: Any) -> list[str]:
    """The parameters and buffers of a built component that got no weights (left on the meta device)."""
    named = itertools.chain(model.named_parameters(), model.named_buffers()) if hasattr(model, "named_parameters") else ()
    return [name for name, tensor in named if getattr(tensor, "is_meta", False)]


def shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
