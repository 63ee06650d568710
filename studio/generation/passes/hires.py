"""The hires fix pass: the second pass of a txt2img run, as A1111 does it.

The first pass samples at width x height. Its result is upscaled to `request.hires_size()` —
latents resized directly for the "Latent ..." upscalers (so the first pass returns latents),
otherwise decoded, upscaled by a pixel/model upscaler — and denoised again by the img2img
pipeline (from_pipe over the same components) with `denoising_strength`, running the last
floor(strength * steps) of `hr_second_pass_steps or steps`. Each image gets a fresh generator
from its own seed for the second pass, so a seed reproduces the whole run.
"""
from __future__ import annotations

from typing import Any

import torch
from diffusers import DiffusionPipeline
from PIL import Image

from studio.checkpoints.upscaler_files import LATENT_UPSCALERS
from studio.checkpoints.upscalers import Upscalers, upscale_latents
from studio.generation.controls import at_size, control_kwargs, ip_adapter_kwargs, steering
from studio.generation.latents import decode
from studio.generation.pipelines import pipeline_for, scheduler_for
from studio.generation.plan import RunPlan
from studio.generation.steps import Steps
from studio.generation.vae_guard import nan_safe_decode
from studio.generation.variation import variation_noise, with_noise
from studio.request import GenerationRequest


def uses_latents(request: GenerationRequest) -> bool:
    """Whether the first pass should hand over latents (a latent upscaler) instead of images."""
    return request.enable_hr and request.hr_upscaler in LATENT_UPSCALERS


def steps(request: GenerationRequest) -> int:
    return request.hr_second_pass_steps or request.steps


def steps_to_run(request: GenerationRequest) -> int:
    """How many denoising steps the second pass runs (0 when hires fix is off)."""
    return int(request.denoising_strength * steps(request)) if request.enable_hr else 0


def sampler(request: GenerationRequest) -> str:
    return request.hr_sampler_name or request.sampler_name


def upscale(pipe: DiffusionPipeline, first: Any, request: GenerationRequest, upscalers: Upscalers) -> Any:
    """The first pass's output at the hires size: latents for latent upscalers, else images."""
    width, height = request.hires_size()
    if uses_latents(request):
        return upscale_latents(first, width, height, request.hr_upscaler, pipe.vae_scale_factor)
    return [upscalers.upscale(image, request.hr_upscaler, width, height) for image in first]


def without_denoising(pipe: DiffusionPipeline, source: Any) -> list[Image.Image]:
    """Strength 0 (no step to run): the upscaled result as it is."""
    if isinstance(source, torch.Tensor):
        return [decode(pipe, latents[None]) for latents in source]
    return list(source)


def pass_kwargs(request: GenerationRequest, source: Any, seeds: list[int]) -> dict[str, Any]:
    """img2img arguments of the second pass (scheduler, callback and output type are the engine's)."""
    count = len(seeds)
    return dict(
        prompt=[request.hr_prompt or request.prompt] * count,
        negative_prompt=[request.hr_negative_prompt or request.negative_prompt] * count,
        num_inference_steps=steps(request),
        guidance_scale=request.cfg_scale,
        image=source,
        strength=request.denoising_strength,
        generator=[torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
    )


def sample(plan: RunPlan, first: Any, seeds: list[int], steps: Steps) -> list[Image.Image]:
    """Upscale the base pass's output and denoise it again with img2img."""
    if steps.interrupt.is_set():
        return []
    model, request = plan.model, plan.sampling
    source = upscale(model.pipe, first, request, plan.upscalers)
    if steps_to_run(request) == 0:
        return without_denoising(model.pipe, source)
    width, height = request.hires_size()
    # ControlNet units steer this pass too (as sd-webui-controlnet), with control maps made at its size.
    controls = at_size(plan.settings, plan.controls, width, height, dict(plan.preprocessors))
    pipe = pipeline_for(model, "img2img", controls.controlnets().titles)
    pipe.scheduler = scheduler_for(plan.samplers, request.replace(sampler_name=sampler(request)), model.pipe, seeds)
    noise = variation_noise(pipe, request, seeds, width, height)
    if noise is not None:
        pipe.scheduler = with_noise(pipe.scheduler, noise)
    steps.progress.phase = "hires"
    offset = steps.progress.step
    kwargs = pass_kwargs(request, source, seeds)
    kwargs.update(control_kwargs("img2img", controls), **ip_adapter_kwargs(controls))
    with (torch.inference_mode(), plan.compiled.unet_backend(pipe, model, plan.settings, plan.backend),
          steering(plan.settings, model, pipe, controls, request, seeds[0]), nan_safe_decode(pipe.vae)):
        output = pipe(**kwargs, callback_on_step_end=steps.callback(offset=offset),
                      callback_on_step_end_tensor_inputs=["latents"], output_type="pil")
    return list(output.images)
