"""Live previews: a picture of the latents part-way through sampling (A1111's "Live previews").

    preview_image(latents, pipe, method, tiny_decoders) -> PIL image

Methods (names as A1111 shows them):
- "Approx cheap": a linear map of the 4 latent channels to RGB (plus a bias), fitted per VAE
  family by least squares on decoded samples (factors in preview_factors.json); free.
- "TAESD": diffusers' AutoencoderTiny, when its weights are in models/VAE-approx
  (a diffusers folder named taesd* for SD 1.x, taesdxl* for SDXL); a small fraction of a step.
- "Full": the model's own VAE decode (exact, about as costly as a step or two).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

FACTORS_FILE = Path(__file__).with_name("preview_factors.json")
PREVIEW_METHODS = ("Approx cheap", "TAESD", "Full")
DEFAULT_FAMILY = "studio-default-64px"


class PreviewError(ValueError):
    """A preview method cannot be used with this model (e.g. no TAESD weights)."""


def model_family(pipe: Any) -> str:
    """Which fitted factors fit this model's VAE: the default model's own, SDXL's or SD 1.x's."""
    name = str(getattr(pipe, "name_or_path", "") or pipe.config.get("_name_or_path", ""))
    if "default_model" in name or pipe.vae.config.get("scaling_factor") == _factors()[DEFAULT_FAMILY]["scaling_factor"]:
        return DEFAULT_FAMILY
    cross = pipe.unet.config.get("cross_attention_dim")
    return "sdxl" if cross == 2048 or getattr(pipe, "text_encoder_2", None) is not None else "sd15"


def _factors() -> dict[str, Any]:
    return json.loads(FACTORS_FILE.read_text())


def approx_cheap(latents: torch.Tensor, family: str) -> Image.Image:
    """The first latent of the batch through the family's linear latent -> RGB map."""
    entry = _factors()[family]
    weights = torch.tensor(entry["weights"], dtype=torch.float32)  # (channels, 3)
    bias = torch.tensor(entry["bias"], dtype=torch.float32)  # (3,)
    latent = latents[0].detach().float().cpu()  # (channels, h, w)
    rgb = torch.einsum("chw,cr->hwr", latent, weights) + bias  # in [-1, 1]
    return _to_image(rgb)


def _to_image(rgb_minus1_1: torch.Tensor) -> Image.Image:
    array = ((rgb_minus1_1.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def full_decode(latents: torch.Tensor, pipe: Any) -> Image.Image:
    vae = pipe.vae
    with torch.inference_mode():
        decoded = vae.decode(latents[:1].to(vae.dtype) / vae.config.scaling_factor).sample[0]
    return _to_image(decoded.float().permute(1, 2, 0))


@dataclass
class Previewer:
    """Makes previews for one studio; keeps the tiny decoders it loaded (by folder)."""

    vae_approx_dir: Path
    _tiny: dict[Path, Any] = field(default_factory=dict, repr=False)

    def taesd_folder(self, family: str) -> Path | None:
        """models/VAE-approx/taesd* (SD 1.x) or taesdxl* (SDXL): a diffusers AutoencoderTiny folder."""
        if not self.vae_approx_dir.is_dir():
            return None
        prefix = "taesdxl" if family == "sdxl" else "taesd"
        for folder in sorted(self.vae_approx_dir.iterdir()):
            name = folder.name.lower()
            if (folder / "config.json").is_file() and name.startswith(prefix) and (prefix == "taesdxl" or not name.startswith("taesdxl")):
                return folder
        return None

    def taesd(self, latents: torch.Tensor, pipe: Any, family: str) -> Image.Image:
        folder = self.taesd_folder(family)
        if folder is None:
            raise PreviewError(f"TAESD previews need a diffusers AutoencoderTiny folder in {self.vae_approx_dir}")
        if folder not in self._tiny:
            from diffusers import AutoencoderTiny

            self._tiny[folder] = AutoencoderTiny.from_pretrained(folder, local_files_only=True).eval()
        tiny = self._tiny[folder]
        with torch.inference_mode():
            # AutoencoderTiny decodes unscaled latents (its scaling factor is 1).
            decoded = tiny.decode(latents[:1].to(tiny.dtype) / pipe.vae.config.scaling_factor).sample[0]
        return _to_image(decoded.float().permute(1, 2, 0))

    def preview(self, latents: torch.Tensor, pipe: Any, method: str) -> Image.Image:
        """The preview at the image's own size (Approx cheap makes one pixel per latent cell)."""
        image = preview_image(latents, pipe, method, self)
        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        size = (latents.shape[-1] * scale, latents.shape[-2] * scale)
        return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def preview_image(latents: torch.Tensor, pipe: Any, method: str, previewer: Previewer | None = None) -> Image.Image:
    """A preview of `latents` (the sampler's current, scaled latents) by `method`."""
    if method not in PREVIEW_METHODS:
        raise PreviewError(f"unknown preview method {method!r}; choose one of: {', '.join(PREVIEW_METHODS)}")
    family = model_family(pipe)
    if method == "Full":
        return full_decode(latents, pipe)
    if method == "TAESD":
        if previewer is None:
            raise PreviewError("TAESD previews need a models/VAE-approx folder")
        return previewer.taesd(latents, pipe, family)
    return approx_cheap(latents, family)


# ---------------------------------------------------------------- the API's progress previews

# A1111's "Approx cheap" factors for SD 1.x/2.x latents (4 channels).
APPROX_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))


def latent_preview(latents: torch.Tensor, scale: int, vae: Any = None) -> Image.Image:
    """The first latent of a batch as an image; `vae` decodes exactly, else a linear approximation."""
    with torch.inference_mode():
        sample = latents[:1].detach().to("cpu", torch.float32)
        if vae is not None:
            factor = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
            decoded = vae.decode((sample / factor).to(vae.device, vae.dtype)).sample
            rgb = (decoded[0].float().cpu() + 1) / 2
        elif sample.shape[1] == 4:
            rgb = (torch.einsum("lxy,lr->rxy", sample[0], torch.tensor(APPROX_RGB)) + 1) / 2
        else:
            channels = sample[0, :3]
            low, high = channels.min(), channels.max()
            rgb = (channels - low) / (high - low + 1e-6)
        array = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if vae is None and scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image
