"""Where the model's weights live while it runs: all on the GPU, or offloaded to CPU RAM.

A1111's memory flags, as diffusers' offloading (accelerate hooks):
- `--medvram`: model CPU offload -- each whole model (text encoder, UNet, VAE) moves to the GPU
  when it runs and back after; ~1/3 of the VRAM for a small slow-down.
- `--lowvram`: sequential CPU offload -- every submodule moves to the GPU only for its own forward;
  the least VRAM, much slower.
On a CPU there is nothing to offload to: the flags change nothing there.
"""
from __future__ import annotations

from typing import Any

import torch

NONE, MODEL, SEQUENTIAL = "none", "model", "sequential"


def offload_mode(device: torch.device, medvram: bool = False, lowvram: bool = False) -> str:
    """The offload for these flags on this device (`--lowvram` wins over `--medvram`)."""
    if device.type != "cuda":
        return NONE
    if lowvram:
        return SEQUENTIAL
    return MODEL if medvram else NONE


def place(pipe: Any, device: torch.device, mode: str) -> None:
    """Put the pipeline on `device`, or install the offload hooks that move it there piece by piece."""
    if mode == SEQUENTIAL:
        pipe.enable_sequential_cpu_offload(device=device)
    elif mode == MODEL:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device=device)
