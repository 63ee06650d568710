"""Tiny random-weight models written by tests: an epsilon-prediction SD 1.5-config diffusers
folder (SD 1.5's scheduler config, the default model's text encoder and VAE, a small random
UNet) and single-file checkpoints of the default architecture with random UNet weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
from studio.checkpoints.single_file import SHIPPED_CONFIGS

SD15_SCHEDULER = SHIPPED_CONFIGS / "sd15" / "scheduler" / "scheduler_config.json"


def tiny_sd15_unet_config() -> dict:
    config = json.loads((DEFAULT_MODEL_DIR / "unet" / "config.json").read_text())
    config.update(block_out_channels=[8, 8], addition_embed_type=None, attention_head_dim=4,
                  norm_num_groups=4, sample_size=16)
    return {k: v for k, v in config.items() if not k.startswith("_")}


def write_tiny_sd15_folder(folder: Path, seed: int = 0) -> Path:
    """A diffusers folder: random small UNet, SD 1.5's (epsilon, no zero-SNR) scheduler config."""
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("controlnet-*", "unet", "training.json"))
    torch.manual_seed(seed)
    UNet2DConditionModel.from_config(tiny_sd15_unet_config()).save_pretrained(folder / "unet")
    shutil.copyfile(SD15_SCHEDULER, folder / "scheduler" / "scheduler_config.json")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", json.loads(SD15_SCHEDULER.read_text())["_class_name"]]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def write_random_single_file(path: Path, seed: int = 0) -> Path:
    """A single-file (LDM layout) checkpoint of the default architecture with random UNet weights."""
    from tests.support.ldm_convert import save_single_file

    pipe = DiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, torch_dtype=torch.float32, local_files_only=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in pipe.unet.parameters():
            parameter.normal_(0.0, 0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_single_file(pipe, path)
