"""Model discovery, loading and the one resident model.

Layout (as A1111 lays it out):
    models/Stable-diffusion/*.safetensors      single-file checkpoints
    models/Stable-diffusion/<folder>/           diffusers folders (model_index.json)
plus Hugging Face repo ids ("org/name") when online, and the embedded default model that
ships inside the package and loads through the very same diffusers-folder path.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline

from studio import single_file
from studio.errors import ModelError
from studio.hardware import pick_device, pick_dtype
from studio.settings import PACKAGE_DIR, Settings

DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights"
DEFAULT_MODEL_TITLE = "studio-default-64px"
CHECKPOINT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelEntry:
    title: str  # what users pick and what requests and infotext carry
    kind: str  # "default" | "diffusers" | "single_file" | "pickle" | "hub"
    location: str  # a path, or a repo id for "hub"

    @property
    def path(self) -> Path:
        return Path(self.location)


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


def stable_diffusion_dir(settings: Settings) -> Path:
    return settings.models_dir / "Stable-diffusion"


def discover_models(settings: Settings) -> list[ModelEntry]:
    """Every model the studio can offer: the default first, then models/ in name order."""
    entries = [ModelEntry(DEFAULT_MODEL_TITLE, "default", str(DEFAULT_MODEL_DIR))]
    root = stable_diffusion_dir(settings)
    if not root.is_dir():
        return entries
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.is_dir() and (path / "model_index.json").is_file():
            entries.append(ModelEntry(relative, "diffusers", str(path)))
        elif path.is_file() and path.suffix in CHECKPOINT_SUFFIXES and not _inside_diffusers_dir(path, root):
            entries.append(ModelEntry(relative, "single_file", str(path)))
        elif path.is_file() and path.suffix in PICKLE_SUFFIXES and not _inside_diffusers_dir(path, root):
            entries.append(ModelEntry(relative, "pickle", str(path)))
    return entries


def _inside_diffusers_dir(path: Path, root: Path) -> bool:
    return any((parent / "model_index.json").is_file() for parent in path.parents if parent != root and root in parent.parents)


def find_model(title: str, settings: Settings) -> ModelEntry:
    """Resolve what a user typed: a title, a file name with or without extension, or a repo id."""
    entries = discover_models(settings)
    for entry in entries:
        if title in (entry.title, Path(entry.title).stem, Path(entry.title).name):
            return entry
    if title in ("default", ""):
        return entries[0]
    if _looks_like_repo_id(title):
        return ModelEntry(title, "hub", title)
    names = ", ".join(e.title for e in entries)
    raise ModelError(f"model {title!r} not found under {stable_diffusion_dir(settings)}; available: {names}")


def _looks_like_repo_id(title: str) -> bool:
    parts = title.split("/")
    is_file_name = Path(title).suffix in CHECKPOINT_SUFFIXES + PICKLE_SUFFIXES
    return len(parts) == 2 and all(parts) and not is_file_name


def model_hash(entry: ModelEntry, settings: Settings) -> str:
    """A1111's short hash: first 10 hex digits of sha256 over the weight file(s), cached."""
    if entry.kind == "hub":
        return hashlib.sha256(entry.location.encode()).hexdigest()[:10]
    files = _weight_files(entry.path)
    key = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    cache_file = settings.cache_dir / "hashes.json"
    cache = _read_json(cache_file)
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    short = digest.hexdigest()[:10]
    cache[key] = short
    _write_json(cache_file, cache)
    return short


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    # ControlNets shipped beside a model are separate models: they must not change its hash.
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".ckpt")
        and not any(part.startswith("controlnet") for part in p.relative_to(path).parts)
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def load_pipeline(entry: ModelEntry, settings: Settings) -> DiffusionPipeline:
    """Load one model's pipeline on the configured device and dtype, offline unless a repo id."""
    device = pick_device(settings.device)
    if entry.kind in ("default", "diffusers"):
        pipe = _load_diffusers_folder(entry.path, settings, device)
    elif entry.kind == "single_file":
        pipe = single_file.load(entry.path, settings, torch.float32)
    elif entry.kind == "pickle":
        if not settings.allow_pickle:
            raise ModelError(
                f"{entry.title} is a pickle checkpoint, which can run arbitrary code when loaded; "
                "convert it to .safetensors, or start with --allow-pickle to load it (weights only)"
            )
        pipe = single_file.load(entry.path, settings, torch.float32)
    elif entry.kind == "hub":
        pipe = _load_hub(entry.location)
    else:
        raise ModelError(f"unknown model kind {entry.kind!r}")
    dtype = pick_dtype(settings.dtype, device, sum(p.numel() for p in pipe.unet.parameters()))
    pipe.to(device=device)
    if dtype != torch.float32:
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load_diffusers_folder(path: Path, settings: Settings, device: torch.device) -> DiffusionPipeline:
    if not (path / "model_index.json").is_file():
        raise ModelError(f"{path} is not a diffusers model folder (no model_index.json)")
    try:
        return DiffusionPipeline.from_pretrained(
            path,
            dtype=torch.float32,
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ModelError(f"could not load {path.name}: {_first_line(error)}") from error


def _load_hub(repo_id: str) -> DiffusionPipeline:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return DiffusionPipeline.from_pretrained(
            repo_id,
            dtype=torch.float32,
            local_files_only=offline,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except Exception as error:  # the hub raises many types; all mean "not available"
        hint = " (offline: only models already in the Hugging Face cache can load)" if offline else ""
        raise ModelError(f"could not load {repo_id!r} from the Hugging Face Hub{hint}: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class ModelManager:
    """Keeps exactly one model resident. A failed switch keeps the previous model working."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: LoadedModel | None = None

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
            self.load(self.settings.model or DEFAULT_MODEL_TITLE)
        assert self._loaded is not None
        return self._loaded

    def get(self, title: str | None) -> LoadedModel:
        """The model a request names (None: the resident one), switching if needed."""
        if title is None:
            return self.current()
        entry = find_model(title, self.settings)
        if self._loaded is not None and self._loaded.entry == entry:
            return self._loaded
        return self.load(title)

    def load(self, title: str) -> LoadedModel:
        entry = find_model(title, self.settings)
        if self._loaded is not None and self._loaded.entry == entry:
            return self._loaded
        pipe = load_pipeline(entry, self.settings)
        loaded = LoadedModel(entry=entry, pipe=pipe, hash=model_hash(entry, self.settings))
        self._unload()
        self._loaded = loaded
        return loaded

    def _unload(self) -> None:
        if self._loaded is None:
            return
        self._loaded.mode_pipelines.clear()
        self._loaded.controlnets.clear()
        self._loaded.networks = None
        self._loaded = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
