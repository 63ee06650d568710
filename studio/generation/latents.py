"""Latent-space helpers shared by the modes: initial noise, VAE round trip, latent tricks."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from PIL import Image


def initial_noise(pipe: DiffusionPipeline, width: int, height: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Noise drawn on the CPU per image from its own seed, so a seed gives the same image on
    every device and in every batch position."""
    shape = noise_shape(pipe, width, height)
    noise = [torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(noise).to(device=pipe.device, dtype=pipe.unet.dtype)


def noise_shape(pipe: DiffusionPipeline, width: int, height: int) -> tuple[int, int, int]:
    """One image's latent noise shape (C x H x W) at this pixel size."""
    channels = pipe.unet.config.in_channels if pipe.unet.config.in_channels == 4 else pipe.vae.config.latent_channels
    scale = pipe.vae_scale_factor
    return channels, height // scale, width // scale


def to_tensor(image: Image.Image, pipe: DiffusionPipeline) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)[None]
    return tensor.to(device=pipe.device, dtype=pipe.vae.dtype)


def encode(pipe: DiffusionPipeline, image: Image.Image) -> torch.Tensor:
    """Deterministic encoding (the posterior's mean), scaled as the UNet expects."""
    with torch.inference_mode():
        posterior = pipe.vae.encode(to_tensor(image, pipe)).latent_dist
        return posterior.mode() * pipe.vae.config.scaling_factor


def decode(pipe: DiffusionPipeline, latents: torch.Tensor) -> Image.Image:
    with torch.inference_mode():
        pixels = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(pixels, output_type="pil")[0]


def vae_round_trip(pipe: DiffusionPipeline, image: Image.Image) -> Image.Image:
    """What strength 0 returns: the input through the VAE and back, nothing denoised."""
    return decode(pipe, encode(pipe, image))


def latent_upscale(pipe: DiffusionPipeline, image: Image.Image, width: int, height: int) -> torch.Tensor:
    """A1111's "Just resize (latent upscale)": encode at the image's own size, resize the latents."""
    scale = pipe.vae_scale_factor
    own = image.convert("RGB").resize((max(scale, image.width // scale * scale), max(scale, image.height // scale * scale)))
    latents = encode(pipe, own)
    return F.interpolate(latents, size=(height // scale, width // scale), mode="bilinear", align_corners=False)


def masked_latents(
    pipe: DiffusionPipeline, image: Image.Image, mask: Image.Image, fill: str, generators: list[torch.Generator]
) -> torch.Tensor:
    """A1111's "latent noise" / "latent nothing": the masked latents become noise / zeros."""
    latents = encode(pipe, image)
    size = latents.shape[-2:]
    m = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)[None, None]
    m = F.interpolate(m, size=size, mode="bilinear", align_corners=False).to(latents)
    batch = []
    for generator in generators:
        replacement = (torch.randn(latents.shape[1:], generator=generator).to(latents)[None]
                       if fill == "latent noise" else torch.zeros_like(latents))
        batch.append(latents * (1 - m) + replacement * m)
    return torch.cat(batch)
