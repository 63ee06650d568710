"""Offline loading of single-file (original Stable Diffusion layout) checkpoints.

`from_single_file` needs diffusers-format configs for every component; by default it fetches
them from the Hub. We pick a config folder that matches the checkpoint's tensor shapes from the
ones we ship (studio/configs/<arch>/, tokenizer derived locally) and the embedded default model's
own folder, and pass it explicitly, so nothing is downloaded.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline
from safetensors import safe_open

import diffusers

from studio.errors import ModelError
from studio.settings import PACKAGE_DIR, Settings

SHIPPED_CONFIGS = PACKAGE_DIR / "configs"
DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model" / "weights"
_UNET = "model.diffusion_model."


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
            raise ModelError(f"{path.name} is not a readable .safetensors file: {error}") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses code-carrying pickles
        raise ModelError(f"{path.name} could not be read safely (weights only): {error}") from error
    while isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def signature_of(shapes: dict[str, tuple[int, ...]]) -> UnetSignature:
    conv_in = shapes.get(_UNET + "input_blocks.0.0.weight")
    if conv_in is None:
        raise ModelError("not a Stable Diffusion checkpoint (no UNet input block found)")
    context = next(
        (shape[1] for key, shape in sorted(shapes.items()) if key.startswith(_UNET) and key.endswith("attn2.to_k.weight")),
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
    """Shipped configs carry no vocabulary: copy them to the cache and derive CLIP's BPE there."""
    if (config_dir / "tokenizer" / "vocab.json").is_file():
        return config_dir
    from studio import clip_vocab  # deriving the vocabulary needs open_clip: only when used

    target = settings.cache_dir / "configs" / config_dir.name
    if not (target / "tokenizer" / "vocab.json").is_file():
        shutil.copytree(config_dir, target, dirs_exist_ok=True)
        for sub in ("tokenizer", "tokenizer_2"):
            if (target / sub).is_dir():
                clip_vocab.write_vocab(target / sub)
    return target


def load(path: Path, settings: Settings, dtype: torch.dtype) -> DiffusionPipeline:
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    config_dir = with_tokenizer(pick_config_dir(read_shapes(path)), settings)
    index = json.loads((config_dir / "model_index.json").read_text())
    pipeline_class = getattr(diffusers, index["_class_name"])
    try:
        return pipeline_class.from_single_file(
            str(path), config=str(config_dir), local_files_only=True, torch_dtype=dtype,
            safety_checker=None, requires_safety_checker=False,
        )
    except Exception as error:  # conversion errors come in many types; all mean "unusable file"
        raise ModelError(f"could not load {path.name}: {str(error).splitlines()[0]}") from error
