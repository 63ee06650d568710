"""Reduced random SD 2.x single files in the original LDM/A1111 key layout (OpenCLIP text tower
under `cond_stage_model.model.`), and the bundled SD 2.x config folders shrunk to their size.

`shrunk_configs(root)` copies studio/checkpoints/configs/ and shrinks the UNet, VAE and text encoder of every
sd2-* folder (same pipeline classes, schedulers, prediction types, sample sizes and tokenizers), so
a test points single_file.SHIPPED_CONFIGS at it and loads reduced files through the real path.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from studio.checkpoints.single_file import SHIPPED_CONFIGS
from tests.support.ldm_convert import save_single_file

UNET = dict(block_out_channels=[32, 64], layers_per_block=1, attention_head_dim=[2, 4], norm_num_groups=8,
            cross_attention_dim=32, down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
VAE = dict(block_out_channels=[16, 16], down_block_types=["DownEncoderBlock2D"] * 2,
           up_block_types=["UpDecoderBlock2D"] * 2, layers_per_block=1, norm_num_groups=8)
TEXT = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32)


def _update(path: Path, changes: dict) -> dict:
    config = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps(config, indent=2))
    return config


def shrunk_configs(root: Path) -> Path:
    shutil.copytree(SHIPPED_CONFIGS, root)
    for folder in sorted(root.glob("sd2-*")):
        _update(folder / "unet" / "config.json", UNET)
        _update(folder / "vae" / "config.json", VAE)
        _update(folder / "text_encoder" / "config.json", TEXT)
    return root


def write_sd2_single_file(path: Path, configs: Path, variant: str = "sd2-512-base", seed: int = 0,
                          out_bias: float | None = None) -> Path:
    """Random weights in `configs/variant`'s (shrunk) architecture, written in the LDM layout.
    `out_bias`: the UNet's conv_out is zeroed and given this bias, so A1111's v-prediction test run
    (mean of unet(0.5) - 0.5 below -1) gives a known answer (e.g. -3: v, 0: epsilon)."""
    folder = configs / variant
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in json.loads((folder / "text_encoder" / "config.json")
                                                                        .read_text()).items() if not k.startswith("_")}))
    with torch.no_grad():
        for module in (unet, vae, text):
            for parameter in module.parameters():
                parameter.normal_(0.0, 0.02) if parameter.dim() > 1 else None
        if out_bias is not None:
            unet.conv_out.weight.zero_()
            unet.conv_out.bias.fill_(out_bias)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=PNDMScheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return save_single_file(pipe, path, open_clip=True)
