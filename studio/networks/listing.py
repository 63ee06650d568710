"""Network listings in AUTOMATIC1111's API shapes (/sdapi/v1/loras, embeddings, sd-vae).

Nothing is loaded into a model here; embeddings are read (tensors only, pickles only with
--allow-pickle) to report their shape, as A1111 does.
"""
from __future__ import annotations

import json
from typing import Any

from studio.networks import discovery
from studio.networks.embeddings import read_embedding
from studio.networks.index import LoraIndex
from studio.request import RequestError
from studio.settings import Settings


def lora_items(index: LoraIndex) -> list[dict[str, Any]]:
    """[{name, alias, path, metadata}] as A1111's /sdapi/v1/loras; a file that cannot be used is
    listed with a `warning` saying why (it is refused by name)."""
    items = []
    for info in index.table().items:
        item = {"name": info.entry.name, "alias": info.alias, "path": str(info.entry.path),
                "metadata": {k: _json_value(v) for k, v in info.metadata.items()}}
        if info.problem:
            item["warning"] = f"skipped: {info.problem}"
        items.append(item)
    return items


def embedding_items(settings: Settings, text_width: int | None) -> dict[str, dict[str, Any]]:
    """{"loaded": {name: {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}}, "skipped": {...}}:
    skipped are the ones that do not fit the loaded model's text encoder (or cannot be read here)."""
    loaded: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    for entry in discovery.discover_embeddings(settings):
        try:
            data = read_embedding(entry, settings.allow_pickle)
        except RequestError as error:  # a pickle without --allow-pickle, a malformed file: why, in `warning`
            skipped[entry.name] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                   "shape": None, "vectors": None, "warning": str(error)}
            continue
        item = {"step": data.step, "sd_checkpoint": data.sd_checkpoint, "sd_checkpoint_name": data.sd_checkpoint_name,
                "shape": data.shape, "vectors": data.count}
        fits = text_width is None or "clip_l" in data.vectors or data.shape == text_width
        (loaded if fits else skipped)[entry.name] = item
    return {"loaded": loaded, "skipped": skipped}


def vae_items(settings: Settings) -> list[dict[str, str]]:
    """[{model_name, filename}] as A1111's /sdapi/v1/sd-vae."""
    return [{"model_name": entry.name, "filename": str(entry.path)} for entry in discovery.discover_vaes(settings)]


def _json_value(value: str) -> Any:
    """kohya stores some metadata values as JSON text (tag frequencies, dataset dirs); A1111 parses them."""
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def hypernetwork_items(settings: Settings) -> list[dict[str, str]]:
    """[{name, path}] as A1111's /sdapi/v1/hypernetworks."""
    return [{"name": entry.name, "path": str(entry.path)} for entry in discovery.discover_hypernetworks(settings)]
