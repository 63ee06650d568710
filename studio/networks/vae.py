"""VAE choice: "Automatic" (the model's own VAE) or a file or folder from models/VAE.

A single file in A1111's layout (LDM keys, e.g. vae-ft-mse-840000-ema-pruned.safetensors) is
converted by diffusers' single-file loader with the loaded model's own VAE config (written to the
cache, so nothing is fetched); a diffusers folder loads with from_pretrained. The chosen VAE
replaces the `vae` of the model's pipeline and of every mode pipeline built from it; Automatic
puts the model's original module back (its weights were never touched).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline

from studio.networks.discovery import NetworkFile
from studio.networks.files import first_line, read_tensors
from studio.request import RequestError
from studio.settings import Settings


def load_vae(entry: NetworkFile, pipe: DiffusionPipeline, settings: Settings, model: str) -> AutoencoderKL:
    """The VAE of `entry` on the model's device and dtype, checked to fit the model."""
    current = pipe.vae
    try:
        if entry.is_folder:
            vae = AutoencoderKL.from_pretrained(str(entry.path), local_files_only=True, torch_dtype=torch.float32)
        else:
            if entry.is_pickle:
                read_tensors(entry, settings.allow_pickle)  # refuses pickles without --allow-pickle
            config_dir = _config_dir(current, settings)
            vae = AutoencoderKL.from_single_file(str(entry.path), config=str(config_dir), local_files_only=True,
                                                 torch_dtype=torch.float32)
    except RequestError:
        raise
    except Exception as error:  # conversion and shape errors come in many types
        raise RequestError(f"VAE {entry.name} could not be loaded for {model}: {_reason(error)}") from error
    _check_fit(entry, vae, current, model)
    return vae.to(device=current.device, dtype=current.dtype).eval()


def _check_fit(entry: NetworkFile, vae: AutoencoderKL, current: Any, model: str) -> None:
    mine, theirs = current.config, vae.config
    if int(mine.latent_channels) != int(theirs.latent_channels) or len(mine.block_out_channels) != len(theirs.block_out_channels):
        raise RequestError(f"VAE {entry.name} does not fit {model}: it has {theirs.latent_channels} latent channels "
                           f"and {len(theirs.block_out_channels)} levels, the model's VAE {mine.latent_channels} and "
                           f"{len(mine.block_out_channels)}")


def _config_dir(vae: AutoencoderKL, settings: Settings) -> Path:
    """A folder holding the model's VAE config.json (what from_single_file needs offline)."""
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_") or k == "_class_name"}
    config["_class_name"] = "AutoencoderKL"
    text = json.dumps(config, sort_keys=True, default=list)
    folder = settings.cache_dir / "vae-configs" / hashlib.sha256(text.encode()).hexdigest()[:12]
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(text)
    return folder


def set_vae(pipelines: list[DiffusionPipeline], vae: Any) -> None:
    """Put `vae` into every pipeline sharing the model's components."""
    for pipe in pipelines:
        pipe.register_modules(vae=vae)


def _reason(error: BaseException) -> str:
    reason = first_line(error)
    if "meta tensor" in reason or "size mismatch" in reason.lower():
        return "its weights do not match the model's VAE layout"
    return reason

