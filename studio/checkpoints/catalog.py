"""The models a studio can run: the A1111-style models/ tree, titles, hashes.

Layout (as A1111 lays it out):
    models/Stable-diffusion/*.safetensors      single-file checkpoints
    models/Stable-diffusion/<folder>/           diffusers folders (model_index.json)
plus Hugging Face repo ids ("org/name") when Hub loading is enabled (--allow-hub) and the
caller is trusted (the command line, the user's own switch, never a request or PNG recipe), and
the embedded default model that ships inside the package and loads through the very same
diffusers-folder path. Nothing else resolves: a title never names a path outside models/.
Nothing here imports torch: listings cost no model load.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.checkpoints import hashcache
from studio.errors import ModelError
from studio.settings import PACKAGE_DIR, Settings

DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights"
DEFAULT_MODEL_TITLE = "studio-default-64px"
# The same model distilled for 4-step LCM sampling (studio/default_model/distill.py): the offline
# few-step path. "lcm" in the title selects the LCM preset (service/few_step.py).
DISTILLED_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights-lcm"
DISTILLED_MODEL_TITLE = "studio-default-lcm-4step"
CHECKPOINT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# "org/name" as the Hub spells repo ids; no "..", no leading "." or "/" (checked again at load).
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


def stable_diffusion_dir(settings: Settings) -> Path:
    return settings.models_dir / "Stable-diffusion"


def discover_models(settings: Settings) -> list[ModelEntry]:
    """Every model the studio can offer: the default first, its 4-step distillation, then models/ in name order."""
    entries = [ModelEntry(DEFAULT_MODEL_TITLE, "default", str(DEFAULT_MODEL_DIR))]
    if (DISTILLED_MODEL_DIR / "model_index.json").is_file():
        entries.append(ModelEntry(DISTILLED_MODEL_TITLE, "default", str(DISTILLED_MODEL_DIR)))
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
