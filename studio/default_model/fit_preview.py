"""Fit the default model's "Approx cheap" live-preview factors from its own VAE.

    python -m studio.default_model.fit_preview [--images 48]

Generates images with the default model (final latents, 20 steps), decodes them with its VAE,
averages the decoded pixels over each latent cell and solves RGB = latent @ W + b by least
squares. Writes the factors into studio/preview_factors.json under "studio-default-64px".
"""
from __future__ import annotations

import argparse
import json
import random

import torch
from diffusers import DiffusionPipeline

from studio.default_model import WEIGHTS_DIR
from studio.default_model.dataset import PALETTE, SHAPES
from studio.previews import DEFAULT_FAMILY, FACTORS_FILE


def samples(pipe: DiffusionPipeline, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent cells, mean decoded RGB of each cell) over `count` generated images."""
    rng = random.Random(7)
    colours = list(PALETTE)
    cells, targets = [], []
    for index in range(count):
        prompt = f"a {rng.choice(colours)} {rng.choice(SHAPES)} on a {rng.choice(colours)} background"
        generator = torch.Generator().manual_seed(index)
        with torch.inference_mode():
            latents = pipe(prompt, num_inference_steps=20, generator=generator, output_type="latent").images
            rgb = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
        pooled = torch.nn.functional.adaptive_avg_pool2d(rgb, latents.shape[-2:])
        cells.append(latents[0].flatten(1).T)
        targets.append(pooled[0].flatten(1).T)
    return torch.cat(cells), torch.cat(targets)


def fit(cells: torch.Tensor, targets: torch.Tensor) -> tuple[list[list[float]], list[float], float]:
    design = torch.cat([cells, torch.ones(len(cells), 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, targets.double()).solution
    error = (design @ solution - targets.double()).abs().mean().item() * 127.5  # in 0..255 units
    weights, bias = solution[:-1], solution[-1]
    return [[round(v, 5) for v in row] for row in weights.tolist()], [round(v, 5) for v in bias.tolist()], error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    args = parser.parse_args()
    pipe = DiffusionPipeline.from_pretrained(WEIGHTS_DIR, dtype=torch.float32, local_files_only=True, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    weights, bias, error = fit(*samples(pipe, args.images))
    factors = json.loads(FACTORS_FILE.read_text())
    factors[DEFAULT_FAMILY] = {"weights": weights, "bias": bias,
                               "scaling_factor": pipe.vae.config.scaling_factor,
                               "fit": f"{args.images} images, mean abs error {error:.1f}/255 per latent cell"}
    FACTORS_FILE.write_text(json.dumps(factors, indent=1) + "\n")
    print(f"mean abs error {error:.1f}/255; wrote {FACTORS_FILE}")


if __name__ == "__main__":
    main()
