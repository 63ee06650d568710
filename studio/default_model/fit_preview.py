"""Fit the default model's "Approx cheap" live-preview factors from its own VAE.

    python -m studio.default_model.fit_preview [--images 48]

Encodes held-out scenes of the training distribution with the default model's VAE, decodes the
latents again, averages the decoded pixels over each latent cell and solves RGB = latent @ W + b
by least squares (latents in the sampler's scaled space, as the step callback sees them). Writes the factors into studio/preview_factors.json under "studio-default-64px".
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from diffusers import AutoencoderKL

from studio.default_model import WEIGHTS_DIR
from studio.default_model.dataset import make_sample
from studio.generation.previews import DEFAULT_FAMILY, FACTORS_FILE

FIT_SEED = 4242  # not the training stream's seed


def samples(vae: AutoencoderKL, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent cells in the sampler's scaled space, mean decoded RGB of each cell) over `count`
    held-out scenes of the training distribution, encoded and decoded by the model's VAE."""
    images = [make_sample(FIT_SEED, index).image.convert("RGB") for index in range(count)]
    pixels = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
                          for im in images])
    with torch.inference_mode():
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        decoded = vae.decode(latents / vae.config.scaling_factor).sample.clamp(-1, 1)
    pooled = torch.nn.functional.adaptive_avg_pool2d(decoded, latents.shape[-2:])
    return latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), pooled.permute(0, 2, 3, 1).reshape(-1, 3)


def fit(cells: torch.Tensor, targets: torch.Tensor) -> tuple[list[list[float]], list[float], float]:
    design = torch.cat([cells, torch.ones(len(cells), 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, targets.double()).solution
    error = (design @ solution - targets.double()).abs().mean().item() * 127.5  # in 0..255 units
    weights, bias = solution[:-1], solution[-1]
    return [[round(v, 5) for v in row] for row in weights.tolist()], [round(v, 5) for v in bias.tolist()], error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    vae = AutoencoderKL.from_pretrained(WEIGHTS_DIR, subfolder="vae", dtype=torch.float32, local_files_only=True)
    weights, bias, error = fit(*samples(vae, args.images))
    factors = json.loads(FACTORS_FILE.read_text())
    factors[DEFAULT_FAMILY] = {"weights": weights, "bias": bias,
                               "scaling_factor": vae.config.scaling_factor,
                               "fit": f"{args.images} images, mean abs error {error:.1f}/255 per latent cell"}
    FACTORS_FILE.write_text(json.dumps(factors, indent=1) + "\n")
    print(f"mean abs error {error:.1f}/255; wrote {FACTORS_FILE}")


if __name__ == "__main__":
    main()
