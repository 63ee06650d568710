"""Upscalers by the names A1111 users know: latent modes, plain resamplers, and model files.

- Latent upscalers resize the UNet's latents (hires fix only; they have no meaning on pixels).
- "None", "Lanczos" and "Nearest" resample pixels with PIL.
- Every file in models/ESRGAN, models/RealESRGAN, models/DAT and models/SwinIR is an upscaler
  named by its file stem, loaded through spandrel (which detects the architecture from the
  weights). `.safetensors` are read directly; `.pth`/`.pt` only with torch's weights-only
  unpickler, so a file that would run code is refused (re-save it as .safetensors).
  Inference is tiled with overlap (feathered blending), so large images fit in memory.

Paths come only from scanning those folders inside models/: a name never becomes a path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

# A1111's latent upscale modes: name -> (torch interpolation mode, antialias).
LATENT_UPSCALERS: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
PIXEL_UPSCALERS: dict[str, Image.Resampling] = {
    "None": Image.Resampling.LANCZOS,  # no model: a plain resize where a size must be reached
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}
MODEL_FOLDERS = ("ESRGAN", "RealESRGAN", "DAT", "SwinIR", "ScuNET")
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt")
# A1111's built-in upscaler names -> (models/<folder>, the file stems A1111 downloads them as). Here
# nothing is downloaded: the name works once one of those files is in its folder.
BUILTIN_MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "R-ESRGAN 4x+": ("RealESRGAN", ("RealESRGAN_x4plus",)),
    "R-ESRGAN 4x+ Anime6B": ("RealESRGAN", ("RealESRGAN_x4plus_anime_6B",)),
    "R-ESRGAN 2x+": ("RealESRGAN", ("RealESRGAN_x2plus",)),
    "R-ESRGAN General 4xV3": ("RealESRGAN", ("realesr-general-x4v3",)),
    "R-ESRGAN General WDN 4xV3": ("RealESRGAN", ("realesr-general-wdn-x4v3",)),
    "R-ESRGAN AnimeVideo": ("RealESRGAN", ("realesr-animevideov3",)),
    "ESRGAN_4x": ("ESRGAN", ("ESRGAN_4x", "ESRGAN_x4")),
    "SwinIR 4x": ("SwinIR", ("SwinIR_4x", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN")),
    "ScuNET GAN": ("ScuNET", ("ScuNET", "scunet_color_real_gan")),
    "ScuNET PSNR": ("ScuNET", ("ScuNET_psnr", "scunet_color_real_psnr")),
    "DAT x2": ("DAT", ("DAT_x2",)),
    "DAT x3": ("DAT", ("DAT_x3",)),
    "DAT x4": ("DAT", ("DAT_x4",)),
}
# A1111 names this studio cannot run from any file (not a spandrel architecture).
UNAVAILABLE = {"LDSR": "LDSR is a latent diffusion upscaler that this studio does not run; use an "
                       "ESRGAN/Real-ESRGAN/SwinIR/DAT file or a latent upscaler instead"}


@dataclass(frozen=True)
class UpscalerEntry:
    name: str
    kind: str  # "latent" | "pixel" | "model"
    path: Path | None = None
    folder: str = ""  # models/<folder> for model files
    scale: int | None = None  # a model's native factor, known once loaded

    def to_api(self) -> dict[str, Any]:
        """A1111's /sdapi/v1/upscalers item."""
        return {"name": self.name, "model_name": self.folder or None,
                "model_path": str(self.path) if self.path else None, "model_url": None,
                "scale": self.scale or (4 if self.kind == "model" else None)}


def discover(models_dir: Path) -> dict[str, UpscalerEntry]:
    """Plain resamplers, latent modes, then one entry per model file (first file wins a name)."""
    entries = {name: UpscalerEntry(name, "pixel") for name in PIXEL_UPSCALERS}
    entries.update({name: UpscalerEntry(name, "latent") for name in LATENT_UPSCALERS})
    root = models_dir.resolve()
    for folder in MODEL_FOLDERS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            resolved = path.resolve()
            if path.suffix.lower() not in MODEL_SUFFIXES or not resolved.is_file() or not resolved.is_relative_to(root):
                continue
            name = path.stem if path.stem not in entries else f"{path.stem} ({folder})"
            entries.setdefault(name, UpscalerEntry(name, "model", resolved, folder))
    for name, (folder, stems) in BUILTIN_MODELS.items():  # A1111's names for the files it knows
        wanted = {stem.lower() for stem in stems}
        found = next((entry for entry in entries.values()
                      if entry.kind == "model" and entry.folder == folder and entry.path.stem.lower() in wanted), None)
        if found is not None:
            entries.setdefault(name, UpscalerEntry(name, "model", found.path, folder))
    return entries


def missing_reason(name: str) -> str | None:
    """Why an A1111 upscaler name does not run here: the file to place, or that it never does."""
    if name in UNAVAILABLE:
        return UNAVAILABLE[name]
    if name in BUILTIN_MODELS:
        folder, stems = BUILTIN_MODELS[name]
        return (f"{name} is A1111's name for {stems[0]}.pth: place that file (or .safetensors) in "
                f"models/{folder} and refresh; nothing is downloaded")
    return None


def image_upscaler_names(entries: dict[str, UpscalerEntry]) -> list[str]:
    """What upscales pixels (Extras): everything but the latent modes."""
    return [name for name, entry in entries.items() if entry.kind != "latent"]
