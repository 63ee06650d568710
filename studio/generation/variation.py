"""A1111's variation seeds: each image's starting noise is its seed's noise slerped towards its
variation seed's noise by the variation strength, optionally drawn at another size ("resize seed
from width/height") and pasted centred, so a seed found at 512x512 keeps its composition at 512x768.

The maths follows A1111's `create_random_tensors` and `slerp` (modules/processing.py and
modules/rng.py) exactly, including its quirks (norms taken over dim 1 of a C x H x W tensor, and
the near-parallel fallback's weights), so its infotexts mean the same here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from studio.generation.latents import noise_shape
from studio.request import GenerationRequest


@dataclass(frozen=True)
class Variation:
    """The variation settings of one run (resolved: `subseed` is a real seed)."""

    subseed: int
    strength: float
    resize_from: tuple[int, int] | None  # (width, height) in pixels, or None

    @classmethod
    def of(cls, request: GenerationRequest) -> "Variation | None":
        """None when the request uses plain seeds (its images are exactly what they always were)."""
        resize = (request.seed_resize_from_w, request.seed_resize_from_h)
        resize_from = resize if min(resize) > 0 else None
        if request.subseed_strength <= 0 and resize_from is None:
            return None
        return cls(request.subseed, request.subseed_strength, resize_from)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's slerp (val 0: low, val 1: high)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)  # A1111's weights, kept as they are
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def _randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    # On the CPU in fp32, as the studio draws all noise: the same on every device.
    return torch.randn(shape, generator=torch.Generator(device="cpu").manual_seed(seed), dtype=torch.float32)


def image_noise(shape: tuple[int, int, int], seed: int, subseed: int, variation: Variation, scale: int) -> torch.Tensor:
    """One image's starting noise (C x H x W latents; `scale` pixels per latent)."""
    noise_shape = shape
    if variation.resize_from is not None:
        width, height = variation.resize_from
        noise_shape = (shape[0], height // scale, width // scale)
    noise = _randn(seed, noise_shape)
    if variation.strength > 0:
        noise = slerp(variation.strength, noise, _randn(subseed, noise_shape))
    if noise_shape == shape:
        return noise
    # Paste the resized noise centred into noise of the real size (cropped when it is larger).
    full = _randn(seed, shape)
    dx, dy = (shape[2] - noise_shape[2]) // 2, (shape[1] - noise_shape[1]) // 2
    w = noise_shape[2] if dx >= 0 else noise_shape[2] + 2 * dx
    h = noise_shape[1] if dy >= 0 else noise_shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    full[:, ty:ty + h, tx:tx + w] = noise[:, sy:sy + h, sx:sx + w]
    return full


def batch_noise(shape: tuple[int, int, int], seeds: list[int], subseeds: list[int], variation: Variation,
                scale: int) -> torch.Tensor:
    return torch.stack([image_noise(shape, seed, subseed, variation, scale) for seed, subseed in zip(seeds, subseeds)])


def variation_noise(pipe: Any, request: GenerationRequest, seeds: list[int], width: int, height: int) -> torch.Tensor | None:
    """The batch's starting noise at this size when the request uses variation seeds, else None.
    Image i of the run has seed `request.seed + i` and variation seed `request.subseed + i` (A1111)."""
    variation = Variation.of(request)
    if variation is None:
        return None
    subseeds = [variation.subseed + seed - request.seed for seed in seeds]
    noise = batch_noise(noise_shape(pipe, width, height), seeds, subseeds, variation, pipe.vae_scale_factor)
    return noise.to(device=pipe.device, dtype=pipe.unet.dtype)


def with_noise(scheduler: Any, noise: torch.Tensor) -> Any:
    """The scheduler with `add_noise` using `noise` (img2img and inpaint draw their noise inside
    diffusers; this hands them the variation noise instead). The scheduler is the run's own."""
    add_noise: Callable[..., torch.Tensor] = scheduler.add_noise

    def add_variation_noise(original: torch.Tensor, _drawn: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        replacement = noise.to(device=original.device, dtype=original.dtype)
        if replacement.shape != original.shape:  # e.g. diffusers repeated the latents: keep its own noise
            return add_noise(original, _drawn, timesteps)
        return add_noise(original, replacement, timesteps)

    scheduler.add_noise = add_variation_noise
    return scheduler
