"""The SDXL refiner pass (A1111 >= 1.6's "Refiner" and "Switch at").

The base model denoises the first `refiner_switch_at` of the schedule and hands its latents over
(diffusers' `denoising_end`, output_type="latent"); the refiner's img2img pipeline
(StableDiffusionXLImg2ImgPipeline) finishes from there (`denoising_start`, no noise added) and
decodes with its own VAE, as A1111 does after it swaps models. Each image gets a fresh generator
from its own seed for the refiner's steps, so a seed reproduces the whole run. The refiner model
itself is loaded by studio/checkpoints/refiners.py.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from diffusers import DiffusionPipeline
from PIL import Image

from studio.checkpoints.manager import LoadedModel
from studio.checkpoints.refiners import LoadedRefiner, Refiners, is_sdxl
from studio.generation.pipelines import pipeline_for, scheduler_for
from studio.generation.plan import RunPlan
from studio.generation.samplers import SamplerSpec
from studio.generation.steps import Steps
from studio.prompting.conditioning import PromptInputs, prepare_prompts
from studio.request import GenerationRequest, RequestError


def refiner_for(refiners: Refiners, samplers: Mapping[str, SamplerSpec], model: LoadedModel,
                request: GenerationRequest) -> LoadedRefiner | None:
    """The request's SDXL refiner, loaded once and kept (None without one); it must take the
    request's sampler too, checked before any work."""
    if not request.uses_refiner:
        return None
    check_base(model.pipe, model.entry.title)
    if refiners.resolve(request.refiner_checkpoint) == model.entry:  # the base refines itself: no second copy
        refiner = LoadedRefiner(model.entry, pipeline_for(model, "img2img"), model.hash)
    else:
        refiner = refiners.get(request.refiner_checkpoint)
    scheduler_for(samplers, request, refiner.pipe)
    return refiner


def sample(plan: RunPlan, latents: Any, seeds: list[int], steps: Steps) -> list[Image.Image]:
    """The refiner finishes the base's latents from the switch point."""
    if steps.stopped:
        return []
    assert plan.refiner is not None
    request, pipe = plan.sampling, plan.refiner.pipe
    pipe.scheduler = scheduler_for(plan.samplers, request, pipe, seeds)
    prompts = prepare_prompts(pipe, request.prompt, request.negative_prompt, request.steps, request.clip_skip)
    steps.progress.phase = "refiner"
    with torch.inference_mode():
        output = pipe(**pass_kwargs(request, prompts, latents, seeds),
                      callback_on_step_end=steps.callback(offset=steps.progress.step),
                      callback_on_step_end_tensor_inputs=["latents"], output_type="pil")
    return list(output.images)


def check_base(pipe: DiffusionPipeline, title: str) -> None:
    """The base hands over with `denoising_end`, which only SDXL pipelines take."""
    if not is_sdxl(pipe):
        raise RequestError(f"refiner_checkpoint: the SDXL refiner needs an SDXL base model; {title} is not one")


def base_kwargs(request: GenerationRequest) -> dict[str, Any]:
    """What the base pass adds: stop at the switch point, hand over latents."""
    return {"denoising_end": float(request.refiner_switch_at), "output_type": "latent"}


def pass_kwargs(request: GenerationRequest, prompts: PromptInputs, latents: torch.Tensor,
                seeds: list[int]) -> dict[str, Any]:
    """img2img arguments of the refiner's pass (scheduler, callback and output type are the engine's).
    Prompt schedules ([a:b:0.5]) continue with the embeddings of the switch step."""
    count = len(seeds)
    if prompts.conditioning is None:
        text: dict[str, Any] = prompts.pipeline_kwargs(count)
    else:
        switch_step = int(request.refiner_switch_at * request.steps)
        text = prompts.conditioning.pipeline_kwargs(switch_step, count)
    return dict(
        **text,
        image=latents,
        num_inference_steps=request.steps,
        denoising_start=float(request.refiner_switch_at),
        guidance_scale=request.cfg_scale,
        generator=[torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
    )


def infotext(request: GenerationRequest, refiner: LoadedRefiner | None) -> dict[str, Any]:
    """A1111's keys: `Refiner: <title> [hash]`, `Refiner switch at: 0.8`."""
    if refiner is None or not request.uses_refiner:
        return {}
    return {"Refiner": f"{refiner.title} [{refiner.hash}]", "Refiner switch at": f"{request.refiner_switch_at:g}"}
