"""Model discovery, loading and the one resident model.

Layout (as A1111 lays it out):
    models/Stable-diffusion/*.safetensors      single-file checkpoints
    models/Stable-diffusion/<folder>/           diffusers folders (model_index.json)
plus Hugging Face repo ids ("org/name") when Hub loading is enabled (--allow-hub) and the
caller is trusted (the command line, the user's own switch, never a request or PNG recipe), and
the embedded default model that ships inside the package and loads through the very same
diffusers-folder path. Nothing else resolves: a title never names a path outside models/.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import diffusers
import torch
from diffusers import DiffusionPipeline

from studio.checkpoints import files as checkpoint_io
from studio.checkpoints import hashcache, offload, single_file
from studio.checkpoints.devices import pick_device, pick_dtype, use_memory_format
from studio.errors import ModelError, describe_load_error
from studio.errors import first_line as _first_line
from studio.settings import PACKAGE_DIR, Settings

DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights"
DEFAULT_MODEL_TITLE = "studio-default-64px"
CHECKPOINT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# "org/name" as the Hub spells repo ids; no "..", no leading "." or "/" (checked again at load).
_COMPONENT_LIBRARIES = ("diffusers", "transformers")
_HASHED_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".json", ".txt", ".model")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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


def find_model(title: str, settings: Settings, *, allow_hub: bool = False) -> ModelEntry:
    """Resolve what a user typed: a discovered title, or its file name with or without extension.

    A Hugging Face repo id resolves only when the caller is trusted (`allow_hub`: the command
    line or the user's own model switch, never a request or a PNG recipe) AND the user enabled
    Hub loading (`settings.allow_hub`). Anything else that is not discovered is refused.
    """
    entries = discover_models(settings)
    for entry in entries:
        if title in (entry.title, Path(entry.title).stem, Path(entry.title).name):
            return entry
    if title in ("default", ""):
        return entries[0]
    if is_repo_id(title):
        if allow_hub and settings.allow_hub:
            return ModelEntry(title, "hub", title)
        why = "start with --allow-hub to load Hugging Face repo ids" if not settings.allow_hub else \
            "repo ids are not loaded from requests or images; switch to it in the model list first"
        raise ModelError(f"model {title!r} is not in {stable_diffusion_dir(settings)} ({why})")
    names = ", ".join(e.title for e in entries)
    raise ModelError(f"model {title!r} not found under {stable_diffusion_dir(settings)}; available: {names}")


def is_repo_id(title: str) -> bool:
    """A strict Hub repo id: "org/name", no path parts, no file suffix, not a local path."""
    if not isinstance(title, str) or not _REPO_ID.match(title) or ".." in title:
        return False
    if Path(title).suffix in CHECKPOINT_SUFFIXES + PICKLE_SUFFIXES:
        return False
    return not os.path.lexists(title)  # diffusers would load an existing local folder instead


def model_hash(entry: ModelEntry, settings: Settings) -> str:
    """A short hash (10 hex digits of sha256) of what determines the model's output, cached.

    Single files: A1111's hash of the file, unchanged. Diffusers folders: every pipeline
    component's weights and configs (scheduler config, tokenizer files) and model_index.json, each
    with its relative path, so two folders differing only in a config hash differently. Hub
    models: their files in the local Hugging Face cache, or "unknown" when not cached.
    """
    if entry.kind == "hub":
        folder = _cached_hub_snapshot(entry.location)
        if folder is None:
            return "unknown"
        return _hash_files(folder, _model_files(folder), settings)
    return _hash_files(entry.path, _model_files(entry.path), settings)


def _hash_files(root: Path, files: list[Path], settings: Settings) -> str:
    def digest() -> str:
        def blocks() -> Iterable[bytes]:
            for path in files:
                if root.is_dir():  # names matter in a folder: the same bytes as another component differ
                    yield path.relative_to(root).as_posix().encode() + b"\0"
                yield from hashcache.file_blocks(path)

        return hashcache.sha256_hex(blocks())[:10]

    return hashcache.cached(settings.cache_dir / "hashes.json", hashcache.stamp(files), digest)


def _model_files(path: Path) -> list[Path]:
    """The files that determine a model's output: the file itself, or a diffusers folder's
    model_index.json and its components' weights, configs and tokenizer files."""
    if path.is_file():
        return [path]
    index = hashcache.read_json(path / "model_index.json")
    components = {name for name, value in index.items()
                  if not name.startswith("_") and isinstance(value, list) and value and value[0] is not None}
    # ControlNets shipped beside a model are separate models: they must not change its hash.
    files = [path / "model_index.json"] if (path / "model_index.json").is_file() else []
    files += sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix in _HASHED_SUFFIXES
        and p.relative_to(path).parts[0] in components
    )
    return files


def _cached_hub_snapshot(repo_id: str) -> Path | None:
    """The repo's snapshot folder in the local Hugging Face cache (never the network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (or an unreadable cache): the hash is unknown
        return None


def load_pipeline(entry: ModelEntry, settings: Settings) -> DiffusionPipeline:
    """Load one model's pipeline on the configured device and dtype, offline unless a repo id.

    The dtype is decided before loading (from the weight files' headers), and every loader
    builds the weights in it: a bf16/fp16 model never exists as a float32 copy first.
    """
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device, estimated_parameter_count(entry))
    if entry.kind in ("default", "diffusers"):
        pipe = _load_diffusers_folder(entry.path, settings, dtype)
    elif entry.kind == "single_file":
        pipe = single_file.load(entry.path, settings, dtype)
    elif entry.kind == "pickle":
        if not settings.allow_pickle:
            raise ModelError(
                f"{entry.title} is a pickle checkpoint, which can run arbitrary code when loaded; "
                "convert it to .safetensors, or start with --allow-pickle to load it (weights only)"
            )
        pipe = single_file.load(entry.path, settings, dtype)
    elif entry.kind == "hub":
        pipe = _load_hub(entry.location, dtype)
    else:
        raise ModelError(f"unknown model kind {entry.kind!r}")
    offload.place(pipe, device, offload.offload_mode(device, settings.medvram, settings.lowvram))
    use_memory_format([pipe.unet, pipe.vae], device, dtype)
    pipe.set_progress_bar_config(disable=True)
    if settings.compile:
        from studio.checkpoints.compilation import compile_unet

        compile_unet(pipe, settings.cache_dir)
    return pipe


# Hub models are real Stable Diffusion checkpoints (hundreds of millions of UNet weights).
_HUB_PARAMETER_GUESS = 860_000_000


def estimated_parameter_count(entry: ModelEntry) -> int:
    """The UNet's weight count without loading it: from .safetensors headers, else file sizes."""
    if entry.kind == "hub":
        return _HUB_PARAMETER_GUESS
    if entry.kind in ("single_file", "pickle"):
        if entry.path.suffix == ".safetensors":
            return checkpoint_io.parameter_count([entry.path], prefix=single_file.UNET_PREFIX)
        return entry.path.stat().st_size // 4  # a pickle's header is its whole file: assume fp32, all UNet-ish
    unet_files = sorted((entry.path / "unet").glob("*.safetensors"))
    if unet_files:
        return checkpoint_io.parameter_count(unet_files)
    return sum(p.stat().st_size for p in (entry.path / "unet").glob("*.bin")) // 4


def _load_diffusers_folder(path: Path, settings: Settings, dtype: torch.dtype) -> DiffusionPipeline:
    components = check_model_index(path)
    pickles = pickle_only_components(path, components)
    if pickles and not settings.allow_pickle:
        raise ModelError(
            f"{path.name} stores {', '.join(pickles)} as pickle files, which can run code when loaded; "
            "convert them to .safetensors, or start with --allow-pickle to load them (weights only)"
        )
    try:
        return DiffusionPipeline.from_pretrained(
            path,
            dtype=dtype,
            local_files_only=True,
            # Without --allow-pickle only .safetensors load; with it diffusers and transformers
            # still read .bin files weights-only (torch.load(weights_only=True)).
            use_safetensors=None if settings.allow_pickle else True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except Exception as error:  # diffusers raises OSError/ValueError/TypeError/AttributeError... for bad folders
        raise ModelError(f"could not load {path.name}: {describe_load_error(error)}") from error


def check_model_index(path: Path) -> list[str]:
    """The pipeline components model_index.json names, after checking it is one diffusers can
    build without importing anything but diffusers and transformers; ModelError otherwise."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(f"{path.name} is not a diffusers model folder (no model_index.json)")
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{path.name}/model_index.json is not readable JSON ({_first_line(error)})") from error
    if not isinstance(index, dict):
        raise ModelError(f"{path.name}/model_index.json must be a JSON object")
    class_name = index.get("_class_name")
    pipeline_class = getattr(diffusers, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(pipeline_class, type) and issubclass(pipeline_class, DiffusionPipeline)):
        raise ModelError(
            f"{path.name}/model_index.json names pipeline class {class_name!r}, which is not a diffusers "
            "pipeline (custom pipeline code is not loaded)"
        )
    components = []
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list):
            continue
        if len(value) != 2:
            raise ModelError(f"{path.name}/model_index.json: component {name!r} must be [library, class]")
        if value == [None, None]:
            continue
        library, cls = value
        if library not in _COMPONENT_LIBRARIES or not isinstance(cls, str):
            raise ModelError(f"{path.name}/model_index.json: component {name!r} comes from {library!r}; "
                             f"only {', '.join(_COMPONENT_LIBRARIES)} components are loaded")
        components.append(name)
    return components


def pickle_only_components(path: Path, components: list[str]) -> list[str]:
    """Pickle weight files of components that have no .safetensors to load instead."""
    found = []
    for name in components:
        folder = path / name
        if not folder.is_dir() or any(folder.glob("*.safetensors")):
            continue
        found += [p.relative_to(path).as_posix() for p in sorted(folder.iterdir()) if p.suffix in PICKLE_SUFFIXES]
    return found


def _load_hub(repo_id: str, dtype: torch.dtype) -> DiffusionPipeline:
    if not is_repo_id(repo_id):  # checked again: a local folder of that name may have appeared
        raise ModelError(f"{repo_id!r} is not a Hugging Face repo id")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return DiffusionPipeline.from_pretrained(
            repo_id,
            dtype=dtype,
            local_files_only=offline,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except Exception as error:  # the hub raises many types; all mean "not available"
        hint = " (offline: only models already in the Hugging Face cache can load)" if offline else ""
        raise ModelError(f"could not load {repo_id!r} from the Hugging Face Hub{hint}: {_first_line(error)}") from error


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
            # The start-up model comes from the command line: it may be a Hub id (with --allow-hub).
            self.load(self.settings.model or DEFAULT_MODEL_TITLE, allow_hub=True)
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
