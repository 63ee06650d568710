"""Loading one model's pipeline: the embedded default, diffusers folders, single files, Hub ids,
on the configured device and dtype, offline unless the caller named a repo id."""
from __future__ import annotations

import json
import os
from pathlib import Path

import diffusers
import torch
from diffusers import DiffusionPipeline

from studio.checkpoints import files as checkpoint_io
from studio.checkpoints import offload, single_file
from studio.checkpoints.catalog import PICKLE_SUFFIXES, ModelEntry, is_repo_id
from studio.checkpoints.devices import pick_device, pick_dtype, use_memory_format
from studio.errors import ModelError, describe_load_error
from studio.errors import first_line as _first_line
from studio.settings import Settings

_COMPONENT_LIBRARIES = ("diffusers", "transformers")


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


