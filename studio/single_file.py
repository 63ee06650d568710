"""Offline loading of single-file (original Stable Diffusion layout) checkpoints.

`from_single_file` needs diffusers-format configs for every component; by default it fetches
them from the Hub. We pick a config folder that matches the checkpoint's tensor shapes from the
ones we ship (studio/configs/<arch>/, tokenizer derived locally) and the embedded default model's
own folder, and pass it explicitly, so nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from safetensors import safe_open

import diffusers

from studio import clip_vocab
from studio.errors import ModelError, describe_load_error, first_line as _first_line
from studio.settings import PACKAGE_DIR, Settings

SHIPPED_CONFIGS = PACKAGE_DIR / "configs"
DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights"
_UNET = "model.diffusion_model."
# Only configs and tokenizer files go into the cache: with weights next to the configs,
# from_single_file silently takes a component missing from the checkpoint from the folder.
_CONFIG_SUFFIXES = (".json", ".txt", ".model")
_VOCAB_FILES = ("vocab.json", "tokenizer.json")


@dataclass(frozen=True)
class UnetSignature:
    in_channels: int
    model_channels: int
    context_dim: int | None

    @classmethod
    def from_config(cls, unet_config: dict[str, Any]) -> "UnetSignature":
        return cls(
            int(unet_config["in_channels"]),
            int(unet_config["block_out_channels"][0]),
            _context_dim(unet_config.get("cross_attention_dim")),
        )


def _context_dim(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        return int(value[0])
    return None if value is None else int(value)


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes by key, without loading tensor data for .safetensors."""
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own error types for corrupt files
            raise ModelError(f"{path.name} is not a readable .safetensors file: {_first_line(error)}") from error
    state = _load_pickle_weights_only(path)
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def _load_pickle_weights_only(path: Path) -> dict[str, Any]:
    try:
        # mmap (zip-format files only) keeps a multi-GB .ckpt out of RAM while we read shapes.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # weights_only refuses code-carrying pickles
        raise ModelError(f"{path.name} could not be read safely: {describe_load_error(error)}") from error
    while isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path.name} holds a {type(state).__name__}, not a checkpoint state dict")
    return state


def signature_of(shapes: dict[str, tuple[int, ...]]) -> UnetSignature:
    conv_in = shapes.get(_UNET + "input_blocks.0.0.weight")
    if conv_in is None or len(conv_in) != 4:
        raise ModelError("not a Stable Diffusion checkpoint (no UNet input block found)")
    context = next(
        (shape[1] for key, shape in sorted(shapes.items())
         if key.startswith(_UNET) and key.endswith("attn2.to_k.weight") and len(shape) == 2),
        None,
    )
    return UnetSignature(conv_in[1], conv_in[0], context)


def candidate_config_dirs() -> list[Path]:
    shipped = sorted(p for p in SHIPPED_CONFIGS.iterdir() if (p / "model_index.json").is_file()) if SHIPPED_CONFIGS.is_dir() else []
    return [DEFAULT_MODEL_DIR, *shipped]


def pick_config_dir(shapes: dict[str, tuple[int, ...]]) -> Path:
    wanted = signature_of(shapes)
    for folder in candidate_config_dirs():
        unet_config = folder / "unet" / "config.json"
        if unet_config.is_file() and UnetSignature.from_config(json.loads(unet_config.read_text())) == wanted:
            return folder
    raise ModelError(
        f"no bundled config matches this checkpoint (UNet in_channels={wanted.in_channels}, "
        f"channels={wanted.model_channels}, context={wanted.context_dim}); "
        "use a diffusers folder for this architecture"
    )


def with_tokenizer(config_dir: Path, settings: Settings) -> Path:
    """A weights-free copy of `config_dir` in the cache, with CLIP's BPE derived where missing.

    The cache folder is named after a hash of the source configs, so an updated shipped config
    never meets a stale copy, and it is built aside and renamed so concurrent loads are safe.
    """
    files = _config_files(config_dir)
    digest = hashlib.sha256(b"".join(p.relative_to(config_dir).as_posix().encode() + p.read_bytes() for p in files))
    target = settings.cache_dir / "configs" / f"{config_dir.name}-{digest.hexdigest()[:12]}"
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for path in files:
            destination = staging / path.relative_to(config_dir)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        for sub in ("tokenizer", "tokenizer_2"):
            if (staging / sub).is_dir() and not any((staging / sub / name).is_file() for name in _VOCAB_FILES):
                clip_vocab.write_vocab(staging / sub)
        os.replace(staging, target)
    except OSError as error:
        if (target / "model_index.json").is_file():  # another process finished first
            return target
        raise ModelError(f"could not prepare the {config_dir.name} config folder in {target.parent}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _config_files(config_dir: Path) -> list[Path]:
    # Component folders only: the default model's controlnet-* folders are not pipeline parts.
    index = json.loads((config_dir / "model_index.json").read_text())
    parts = {name for name, value in index.items() if isinstance(value, list) and value[0] is not None}
    return sorted(
        p for p in config_dir.rglob("*")
        if p.is_file() and p.suffix in _CONFIG_SUFFIXES
        and (p.parent == config_dir or p.relative_to(config_dir).parts[0] in parts)
    )


def load(path: Path, settings: Settings, dtype: torch.dtype) -> DiffusionPipeline:
    """The pipeline a single-file checkpoint holds, built offline; ModelError if it cannot be."""
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    config_dir = with_tokenizer(pick_config_dir(read_shapes(path)), settings)
    index = json.loads((config_dir / "model_index.json").read_text())
    pipeline_class = getattr(diffusers, index["_class_name"])
    preloaded = _preload_unconvertible(path, config_dir, dtype)
    try:
        return pipeline_class.from_single_file(
            str(path), config=str(config_dir), local_files_only=True, torch_dtype=dtype,
            **_safety_kwargs(pipeline_class), **preloaded,
        )
    except Exception as error:  # conversion errors come in many types; all mean "unusable file"
        reason = describe_load_error(error)
        if "meta tensor" in reason:  # diffusers' way of saying a component's weights were not all there
            reason = "some weights are missing from the file"
        raise ModelError(f"could not load {path.name}: {reason}") from error


def _safety_kwargs(pipeline_class: type) -> dict[str, Any]:
    # SD 1.x pipelines take these; SDXL's do not (and would pass them on to every component).
    accepted = inspect.signature(pipeline_class.__init__).parameters
    return {"safety_checker": None, "requires_safety_checker": False} if "requires_safety_checker" in accepted else {}


def _preload_unconvertible(path: Path, config_dir: Path, dtype: torch.dtype) -> dict[str, torch.nn.Module]:
    """A UNet whose config diffusers' LDM converter only partly maps, loaded here instead.

    The converter drops e.g. an `add_embedding` of type "text" (the embedded default model has
    one); such keys are stored under their diffusers names beneath `model.diffusion_model.`.
    """
    config = UNet2DConditionModel.load_config(str(config_dir), subfolder="unet", local_files_only=True)
    if config.get("addition_embed_type") in (None, "text_time"):
        return {}
    ldm = _read_prefixed(path, _UNET)
    try:
        converted = convert_ldm_unet_checkpoint(ldm, config)
    except (KeyError, IndexError, ValueError) as error:  # the converter indexes blocks the file lacks
        raise ModelError(f"could not load {path.name}: UNet layout not recognised ({_first_line(error)})") from error
    with init_empty_weights():
        expected = set(UNet2DConditionModel.from_config(config).state_dict())
    for key in expected - converted.keys():
        if _UNET + key in ldm:
            converted[key] = ldm[_UNET + key]
    missing = sorted(expected - converted.keys())
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise ModelError(f"could not load {path.name}: {len(missing)} UNet weights are missing ({shown})")
    # Exactly the model's keys: diffusers then loads them as they are, without converting again.
    state = {key: converted[key] for key in expected}
    try:
        unet = UNet2DConditionModel.from_single_file(
            state, config=str(config_dir), subfolder="unet", torch_dtype=dtype, local_files_only=True)
    except Exception as error:  # shape mismatches and the like: the file does not fit the config
        raise ModelError(f"could not load {path.name}: {_first_line(error)}") from error
    return {"unet": unet}


def _read_prefixed(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}
    state = _load_pickle_weights_only(path)
    return {k: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
