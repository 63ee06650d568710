"""Write the default model as fp16 safetensors in diffusers layout, swapping the folder in atomically."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import ControlNetModel, StableDiffusionPipeline

from . import WEIGHTS_DIR


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def export(pipe: StableDiffusionPipeline, controlnets: Mapping[str, ControlNetModel],
           dest: Path = WEIGHTS_DIR, max_bytes: int = 20 * 2**20) -> int:
    """Save ``pipe`` and ``controlnets`` (kind -> model) under ``dest`` in fp16; returns the size in bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".weights-", dir=dest.parent))
    try:
        pipe.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
        pipe.to(torch.float32)
        for kind, model in controlnets.items():
            model.to(torch.float16).save_pretrained(tmp / f"controlnet-{kind}", safe_serialization=True)
            model.to(torch.float32)
        size = folder_size(tmp)
        if size > max_bytes:
            raise ValueError(f"exported weights are {size / 2**20:.1f} MB, over {max_bytes / 2**20:.0f} MB")
        _swap(tmp, dest)
        return size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(new: Path, dest: Path) -> None:
    """Replace ``dest`` by ``new`` with two renames, so ``dest`` is never half-written."""
    old = dest.with_name(f".{dest.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
