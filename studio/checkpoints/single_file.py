"""Offline loading of single-file (original Stable Diffusion layout) checkpoints.

`from_single_file` needs diffusers-format configs for every component; by default it fetches
them from the Hub. We pick a config folder that matches the checkpoint's tensor shapes from the
ones we ship (studio/checkpoints/configs/<arch>/, tokenizer derived locally) and the embedded default model's
own folder, and pass it explicitly, so nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from accelerate import init_empty_weights
from diffusers import DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.single_file import load_single_file_sub_model
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from safetensors import safe_open

from studio.checkpoints import clip_vocab, parameterization, required_weights
from studio.checkpoints import files as checkpoint_io
from studio.errors import ModelError, describe_load_error
from studio.errors import first_line as _first_line
from studio.settings import PACKAGE_DIR, Settings

SHIPPED_CONFIGS = Path(__file__).with_name("configs")
DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights"
UNET_PREFIX = _UNET = "model.diffusion_model."
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
    state = checkpoint_io.load_pickle_weights_only(path)
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


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
    return matching_config_dirs(shapes)[0]


def matching_config_dirs(shapes: dict[str, tuple[int, ...]]) -> list[Path]:
    """Every bundled config folder whose UNet has the checkpoint's shapes, in order (SD 2.x's
    512-base and 768-v share their shapes and differ in what they predict); ModelError if none."""
    wanted = signature_of(shapes)
    found = []
    for folder in candidate_config_dirs():
        unet_config = folder / "unet" / "config.json"
        if unet_config.is_file() and UnetSignature.from_config(json.loads(unet_config.read_text())) == wanted:
            found.append(folder)
    if found:
        return found
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
    """The pipeline a single-file checkpoint holds, built offline in `dtype`; ModelError if it cannot be.

    The file is read tensor by tensor straight into `dtype` (no float32 copy of a bf16/fp16
    model), each component is built from that one state dict, and the tokenizer and scheduler
    come from the matching config folder.
    """
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    candidates = matching_config_dirs(read_shapes(path))
    config_dir = with_tokenizer(candidates[0], settings)
    index = json.loads((config_dir / "model_index.json").read_text())
    checkpoint = checkpoint_io.read_checkpoint(path, dtype)
    try:
        models = _load_models(checkpoint, path, config_dir, index, dtype)
        checkpoint.clear()  # the models hold what they need
        prediction = parameterization.prediction_type(path, models["unet"], [_prediction_of(c) for c in candidates])
        chosen = _variant(candidates, prediction)
        if chosen != candidates[0]:  # e.g. SD 2.x 768-v: the same weights, its own scheduler and size
            config_dir = with_tokenizer(chosen, settings)
            index = json.loads((config_dir / "model_index.json").read_text())
            unet_config = json.loads((config_dir / "unet" / "config.json").read_text())
            models["unet"].register_to_config(sample_size=unet_config["sample_size"])
        pipeline_class = getattr(diffusers, index["_class_name"])
        pipe = pipeline_class.from_pretrained(
            str(config_dir), local_files_only=True, dtype=dtype, **_safety_kwargs(pipeline_class), **models,
        )
        if pipe.scheduler.config.get("prediction_type", parameterization.EPSILON) != prediction:  # a sidecar said so
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=prediction)
        return pipe
    except ModelError:
        raise
    except Exception as error:  # conversion errors come in many types; all mean "unusable file"
        reason = describe_load_error(error)
        if "meta tensor" in reason:  # diffusers' way of saying a component's weights were not all there
            reason = "some weights are missing from the file"
        raise ModelError(f"could not load {path.name}: {reason}") from error


def _prediction_of(config_dir: Path) -> str:
    scheduler = json.loads((config_dir / "scheduler" / "scheduler_config.json").read_text())
    return scheduler.get("prediction_type", parameterization.EPSILON)


def _variant(candidates: list[Path], prediction: str) -> Path:
    """The first matching config folder that predicts `prediction` (else the first match)."""
    return next((folder for folder in candidates if _prediction_of(folder) == prediction), candidates[0])


def _load_models(
    checkpoint: dict[str, torch.Tensor], path: Path, config_dir: Path, index: dict[str, Any], dtype: torch.dtype
) -> dict[str, Any]:
    """The components that carry weights (UNet, VAE, text encoders), built from `checkpoint`."""
    models: dict[str, Any] = {}
    for name, value in sorted(index.items()):
        if not (isinstance(value, list) and value[0] is not None):
            continue
        library, class_name = value
        class_obj = getattr(importlib.import_module(library), class_name, None)
        if not (isinstance(class_obj, type) and issubclass(class_obj, torch.nn.Module)):
            continue  # tokenizers and schedulers load from the config folder
        if name == "unet" and _needs_own_unet_conversion(config_dir):
            models[name] = _load_unconvertible_unet(checkpoint, path, config_dir, dtype)
            continue
        missing = required_weights.missing_before(checkpoint.keys(), class_name)
        if missing:
            raise ModelError(f"could not load {path.name}: the {name} weights {required_weights.shown(missing)} "
                             "are missing from the file")
        models[name] = load_single_file_sub_model(
            library_name=library, class_name=class_name, name=name, checkpoint=checkpoint,
            pipelines=diffusers.pipelines, is_pipeline_module=hasattr(diffusers.pipelines, library),
            cached_model_config_path=str(config_dir), local_files_only=True, torch_dtype=dtype,
        )
        empty = required_weights.missing_after(models[name])
        if empty:  # left on the meta device: placing the model would fail later with a bare 500
            raise ModelError(f"could not load {path.name}: {len(empty)} {name} weights are missing from the file "
                             f"({required_weights.shown(empty)})")
    return models


def _safety_kwargs(pipeline_class: type) -> dict[str, Any]:
    # SD 1.x pipelines take these; SDXL's do not (and would pass them on to every component).
    accepted = inspect.signature(pipeline_class.__init__).parameters
    return {"safety_checker": None, "requires_safety_checker": False} if "requires_safety_checker" in accepted else {}


def _needs_own_unet_conversion(config_dir: Path) -> bool:
    config = UNet2DConditionModel.load_config(str(config_dir), subfolder="unet", local_files_only=True)
    return config.get("addition_embed_type") not in (None, "text_time")


def _load_unconvertible_unet(
    checkpoint: dict[str, torch.Tensor], path: Path, config_dir: Path, dtype: torch.dtype
) -> UNet2DConditionModel:
    """A UNet whose config diffusers' LDM converter only partly maps, converted here instead.

    The converter drops e.g. an `add_embedding` of type "text" (the embedded default model has
    one); such keys are stored under their diffusers names beneath `model.diffusion_model.`.
    """
    config = UNet2DConditionModel.load_config(str(config_dir), subfolder="unet", local_files_only=True)
    ldm = {k: v for k, v in checkpoint.items() if k.startswith(_UNET)}
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
        return UNet2DConditionModel.from_single_file(
            state, config=str(config_dir), subfolder="unet", torch_dtype=dtype, local_files_only=True)
    except Exception as error:  # shape mismatches and the like: the file does not fit the config
        raise ModelError(f"could not load {path.name}: {_first_line(error)}") from error
