"""Benchmark models: an SD1.5-size random-weight checkpoint built from the shipped configs.

Written once as an A1111 single file into a cache outside the repo
(~/.cache/diffusion-studio-bench, or $STUDIO_BENCH_CACHE) and reused by every run.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from studio.checkpoints.single_file import SHIPPED_CONFIGS

BENCH_CACHE = Path(os.environ.get("STUDIO_BENCH_CACHE", Path.home() / ".cache" / "diffusion-studio-bench"))


def sd15_single_file(dtype: torch.dtype = torch.float16, cache: Path = BENCH_CACHE) -> Path:
    """A random SD1.5-size checkpoint (UNet, VAE, CLIP text encoder) in `dtype`, built once."""
    name = {torch.float16: "fp16", torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    path = cache / "Stable-diffusion" / f"sd15-random-{name}.safetensors"
    if not path.is_file():
        random_single_file(SHIPPED_CONFIGS / "sd15", path, dtype)
    return path


def random_single_file(config: Path, path: Path, dtype: torch.dtype, seed: int = 0) -> Path:
    """Random weights for the SD 1.x config folder `config`, written as an A1111 single file."""
    from tests.support.ldm_convert import save_single_file

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    class Parts:  # what save_single_file reads from a pipeline
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(config / "text_encoder"))

    tmp = path.with_suffix(".tmp")
    save_single_file(Parts, tmp, dtype=dtype)
    tmp.replace(path)
    return path
