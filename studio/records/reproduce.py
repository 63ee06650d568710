"""Reproduce: regenerate the exact image from one of our PNGs (its `studio` recipe chunk).

The recipe holds the resolved request (seed, size, model, sampler, input images, ControlNet
units with their images), the image's index in its run, the model hash, the library versions and
torch's thread count. On CPU a batch of 2 is not the same arithmetic as two batches of 1 (the
last bit of some pixels differs), so an image from a batch is reproduced by regenerating its
whole batch and picking it out; batches of one iteration are independent of the others (each
has its own seeded generators), so only that iteration is regenerated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from studio.checkpoints.catalog import find_model, model_hash
from studio.checkpoints.manager import ModelManager
from studio.errors import ModelError, StudioError
from studio.networks.recipe import network_warnings
from studio.records import storage
from studio.records.recipes import library_versions
from studio.request import GenerationRequest, RequestError


class NoRecipeError(StudioError):
    """The PNG carries no `studio` recipe (not saved by this studio, or its metadata was stripped)."""


@dataclass(frozen=True)
class Recipe:
    request: GenerationRequest  # regenerates the image's whole batch (n_iter 1)
    position: int  # the image's place in that batch
    model_hash: str | None
    versions: dict[str, str]
    torch_threads: int | None
    batch_prompts: tuple[tuple[str, str], ...] = ()  # each image's own (prompt, negative) when they differed
    networks: dict[str, Any] = field(default_factory=dict)  # LoRA / embedding / VAE hashes it was made with
    refiner_hash: str | None = None  # the SDXL refiner's hash when one was used

    def image_prompts(self) -> Any:
        """For jobs.generate(image_prompts=...): the batch's own prompts, or None."""
        prompts = self.batch_prompts
        return (lambda index: (*prompts[index], {})) if prompts else None


def reproduce_request(path_or_image: Path | str | Image.Image,
                      models: ModelManager | None = None) -> tuple[GenerationRequest, list[str]]:
    """The request that regenerates the image, and why the pixels may differ here. The request
    regenerates the image's whole batch: the image is number `read_recipe(...).position` of it
    (always 0 for images made one per batch). Without `models` the model hash is not compared."""
    recipe = read_recipe(path_or_image)
    return recipe.request, recipe_warnings(recipe, models)


def read_recipe(path_or_image: Path | str | Image.Image) -> Recipe:
    """The recipe, checked field by field: a PNG is untrusted input, so anything malformed is a
    NoRecipeError with a short reason, never a crash."""
    data = _recipe_chunk(path_or_image)
    try:
        request = GenerationRequest.from_dict(_mapping(data["request"], "request")).validate()
        index = _whole_number(data.get("index", 0), "index")
        total = request.batch_size * request.n_iter
        if not 0 <= index < total:
            raise ValueError(f"index {index} is outside its run of {total} image(s)")
        versions = _mapping(data.get("versions") or {}, "versions")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
            raise ValueError("versions must map library names to version strings")
        model_hash = data.get("model_hash")
        if model_hash is not None and not isinstance(model_hash, str):
            raise ValueError("model_hash must be text")
        prompts = _batch_prompts(data.get("batch_prompts"), request.batch_size)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as error:
        raise NoRecipeError(f"the studio recipe in this PNG is damaged: {_short(error)}") from error
    batch = request.batch_size
    first = index - index % batch  # the first image of the image's batch
    batch_request = request.replace(seed=request.seed + first, n_iter=1)
    threads = data.get("torch_threads")
    networks = data.get("networks")
    refiner_hash = data.get("refiner_hash")
    return Recipe(batch_request, index - first, model_hash, dict(versions),
                  threads if isinstance(threads, int) and not isinstance(threads, bool) else None, prompts,
                  networks if isinstance(networks, dict) else {},
                  refiner_hash if isinstance(refiner_hash, str) else None)


def _batch_prompts(value: Any, batch: int) -> tuple[tuple[str, str], ...]:
    """Per-image (prompt, negative) pairs of the image's batch (dynamic prompts), when recorded."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) != batch:
        raise ValueError(f"batch_prompts must list the {batch} prompt(s) of the image's batch")
    if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) for t in p) for p in value):
        raise ValueError("batch_prompts must be [prompt, negative prompt] pairs of text")
    return tuple((p, n) for p, n in value)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def _whole_number(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number (got {str(value)[:40]})")
    return value


def _short(error: BaseException, limit: int = 200) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def recipe_warnings(recipe: Recipe, models: ModelManager | None = None) -> list[str]:
    """What differs from when the image was made and may change its pixels."""
    warnings = []
    if models is not None:
        warnings += _model_warnings(recipe, models)
        warnings += _refiner_warnings(recipe, models)
        warnings += network_warnings(recipe.networks, models.settings)
    current = library_versions()
    for name, made_with in sorted(recipe.versions.items()):
        now = current.get(name)
        if now is not None and now != made_with:
            warnings.append(f"{name} {made_with} made this image; this is {now}: pixels may differ")
    threads = torch.get_num_threads()
    if recipe.torch_threads is not None and recipe.torch_threads != threads:
        warnings.append(f"made with {recipe.torch_threads} torch threads, running with {threads}: "
                        "CPU results may differ in the last bit")
    return warnings


def _model_warnings(recipe: Recipe, models: ModelManager) -> list[str]:
    title = recipe.request.model
    if title is None or recipe.model_hash is None:
        return []
    loaded = models.loaded
    try:
        if loaded is not None and loaded.entry.title == title:
            current = loaded.hash
        else:
            current = model_hash(find_model(title, models.settings), models.settings)
    except ModelError:
        return [f"model {title} is not available here"]
    return _hash_differs("model", title, current, recipe.model_hash)


def _refiner_warnings(recipe: Recipe, models: ModelManager) -> list[str]:
    title = recipe.request.refiner_checkpoint
    if not recipe.request.uses_refiner or recipe.refiner_hash is None:
        return []
    try:
        current = model_hash(find_model(title, models.settings), models.settings)
    except ModelError:
        return [f"refiner {title} is not available here"]
    return _hash_differs("refiner", title, current, recipe.refiner_hash)


def _hash_differs(kind: str, title: str, current: str, recorded: str) -> list[str]:
    if current == recorded:
        return []
    return [f"{kind} {title} has hash {current} here, the image was made with {recorded}: it is not the same model file"]


def _recipe_chunk(path_or_image: Path | str | Image.Image) -> dict[str, Any]:
    source = Path(path_or_image) if isinstance(path_or_image, str) else path_or_image
    try:
        chunks = storage.read_png_text(source)
    except (UnidentifiedImageError, OSError) as error:
        raise RequestError(f"not an image that can be read: {error}") from error
    raw = chunks.get(storage.STUDIO_KEY)
    if not raw and not chunks.get("parameters"):  # nothing at all to read (issue 25 §15)
        raise NoRecipeError("this PNG has no generation parameters (no A1111 `parameters` text and no studio "
                            "recipe): it was not made by a Stable Diffusion UI, or its metadata was stripped")
    if not raw:
        raise NoRecipeError("this PNG has no studio recipe (it was not saved by this studio, or its metadata "
                            "was stripped): use PNG Info to send its parameters to a tab instead")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise NoRecipeError(f"the studio recipe in this PNG is not valid JSON: {_short(error)}") from error
    if not isinstance(data, dict) or not isinstance(data.get("request"), dict):
        raise NoRecipeError("the studio recipe in this PNG has no request")
    return data
