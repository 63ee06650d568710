"""Progress previews: a cheap latent -> RGB approximation, or the model's VAE when asked."""
from __future__ import annotations

from typing import Any

import torch
from PIL import Image

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
