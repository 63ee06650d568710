"""A tiny random-weight RRDBNet (ESRGAN) written the way Real-ESRGAN/BasicSR files store it."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def rrdbnet_state_dict(nf: int = 8, gc: int = 32, nb: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """BasicSR's RRDBNet keys (conv_first, body.N.rdbK.convM, conv_body, conv_up1/2, conv_hr,
    conv_last) for a 4x model: the layout of RealESRGAN_x4plus.pth that spandrel detects."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out_ch: int, in_ch: int) -> None:
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * 0.05
        state[f"{name}.bias"] = torch.zeros(out_ch)

    conv("conv_first", nf, 3)
    for block in range(nb):
        for rdb in (1, 2, 3):
            prefix = f"body.{block}.rdb{rdb}"
            for index in range(1, 5):
                conv(f"{prefix}.conv{index}", gc, nf + (index - 1) * gc)
            conv(f"{prefix}.conv5", nf, nf + 4 * gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, nf, nf)
    conv("conv_last", 3, nf)
    return state


def write_esrgan(folder: Path, name: str = "tiny-esrgan-4x", suffix: str = ".safetensors", **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    state = rrdbnet_state_dict(**kwargs)
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"params_ema": state}, path)  # Real-ESRGAN's .pth nesting
    return path
