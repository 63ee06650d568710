"""The one resident model: loaded on first use, switched between jobs, released cleanly."""
from __future__ import annotations

import ctypes
import gc
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline

from studio.checkpoints.catalog import DEFAULT_MODEL_TITLE, ModelEntry, discover_models, find_model, model_hash
from studio.checkpoints.loading import load_pipeline
from studio.settings import Settings


@dataclass
class LoadedModel:
    entry: ModelEntry
    pipe: DiffusionPipeline
    hash: str
    # Mode pipelines built over the same components with from_pipe (never reloaded).
    mode_pipelines: dict[str, DiffusionPipeline] = field(default_factory=dict)
    # ControlNets loaded for this model, by title (loaded once, attached without reloading the base).
    controlnets: dict[str, Any] = field(default_factory=dict)
    # LoRA adapters, embeddings and VAEs loaded into this model (studio.networks.manager.ModelNetworks).
    networks: Any = None

    @property
    def folder(self) -> Path | None:
        """The model's folder when it is one (ControlNets may ship beside it)."""
        return self.entry.path if self.entry.kind in ("default", "diffusers") else None

    @property
    def native_size(self) -> int:
        unet = self.pipe.unet
        return int(unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.pipe.unet.parameters())


class ModelManager:
    """Keeps exactly one model resident. A failed switch keeps the previous model working."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: LoadedModel | None = None
        self._unloaded_title: str | None = None  # what unload() freed: current() loads it again

    def entries(self) -> list[ModelEntry]:
        return discover_models(self.settings)

    def titles(self) -> list[str]:
        return [entry.title for entry in self.entries()]

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def current(self) -> LoadedModel:
        """The resident model, loading the configured (or default) model on first use."""
        if self._loaded is None:
            # The start-up model comes from the command line: it may be a Hub id (with --allow-hub).
            self.load(self.resident_title, allow_hub=True)
        assert self._loaded is not None
        return self._loaded

    def get(self, title: str | None) -> LoadedModel:
        """The model a request names (None: the resident one), switching if needed.
        Requests are untrusted: they name discovered models (or the resident one) only."""
        if title is None:
            return self.current()
        if self._loaded is not None and title == self._loaded.entry.title:
            return self._loaded
        entry = find_model(title, self.settings)
        if self._loaded is not None and self._loaded.entry == entry:
            return self._loaded
        return self.load(title)

    def load(self, title: str, *, allow_hub: bool = False) -> LoadedModel:
        """Switch to `title`. `allow_hub`: the caller is trusted to name a Hub repo id (the user's
        own switch with --allow-hub on); requests, recipes and PNGs never are."""
        entry = find_model(title, self.settings, allow_hub=allow_hub)
        if self._loaded is not None and self._loaded.entry == entry:
            return self._loaded
        pipe = load_pipeline(entry, self.settings)
        loaded = LoadedModel(entry=entry, pipe=pipe, hash=model_hash(entry, self.settings))
        self._unload()
        self._loaded = loaded
        return loaded

    def unload(self) -> None:
        """Free the resident model; the next current() loads the same model again."""
        if self._loaded is not None:
            self._unloaded_title = self._loaded.entry.title
        self._unload()

    @property
    def resident_title(self) -> str:
        """The model that is (or, after unload(), was) resident; the start-up model before any."""
        if self._loaded is not None:
            return self._loaded.entry.title
        return self._unloaded_title or self.settings.model or DEFAULT_MODEL_TITLE

    def _unload(self) -> None:
        if self._loaded is None:
            return
        self._loaded.mode_pipelines.clear()
        self._loaded.controlnets.clear()
        self._loaded.networks = None
        self._loaded = None
        release_memory()


def release_memory() -> None:
    """Give freed model memory back to the system: without malloc_trim glibc keeps the freed
    arenas of an unloaded checkpoint, and RSS doubles over a few switches."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    _malloc_trim()


def _malloc_trim() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim): nothing to trim
        pass
