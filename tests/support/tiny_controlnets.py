"""Tiny random ControlNets for the embedded default model, saved where a user puts theirs."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel


def save_random_controlnet(unet: torch.nn.Module, folder: Path, seed: int) -> Path:
    """A ControlNet copied from `unet` whose output convolutions (zero in from_unet) get random
    weights, so it steers the image; written as a diffusers folder."""
    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(unet.to(torch.float32), conditioning_embedding_out_channels=(16, 32, 64))
    with torch.no_grad():
        for conv in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
            conv.weight.normal_(0, 0.3)
    net.save_pretrained(folder)
    return folder
