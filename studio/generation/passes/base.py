"""The base pass: the request's mode (txt2img, img2img, inpaint) on the base model, with its
options (ControlNet units, variation noise, step cache, the NaN-safe VAE decode). It hands latents
to a second pass when one follows (a latent hires upscaler, the SDXL refiner), else images."""
from __future__ import annotations

from typing import Any

import torch
from diffusers import DiffusionPipeline

from studio.checkpoints.manager import LoadedModel
from studio.generation import imageops
from studio.generation.composable import composable
from studio.generation.controls import control_kwargs, ip_adapter_kwargs, steering
from studio.generation.latents import initial_noise, latent_upscale, masked_latents, vae_round_trip
from studio.generation.modes import ModeInputs
from studio.generation.passes import hires, refiner
from studio.generation.pipelines import pipeline_for, scheduler_for
from studio.generation.plan import RunPlan
from studio.generation.speedups import skip_uncond_at_low_sigma, token_merging
from studio.generation.stepcache import step_cache
from studio.generation.steps import Steps
from studio.generation.vae_guard import nan_safe_decode
from studio.generation.variation import variation_noise, with_noise
from studio.prompting.conditioning import PromptInputs, prepare_prompts
from studio.request import INPAINTING_FILLS, GenerationRequest, RequestError


def sample(plan: RunPlan, seeds: list[int], image_prompts: list[tuple[str, str]] | None,
           steps: Steps) -> tuple[Any, bool]:
    """(output, whether a second pass may follow). Every image has its own seeded generator."""
    model, request, inputs, controls = plan.model, plan.sampling, plan.inputs, plan.controls
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    if inputs.mode != "txt2img" and inputs.steps_to_run(request) == 0:
        return [vae_round_trip(model.pipe, inputs.image)] * len(seeds), False  # strength 0: nothing to denoise
    pipe = pipeline_for(model, inputs.mode, controls.controlnets().titles)
    pipe.scheduler = steps.watch(scheduler_for(plan.samplers, request, model.pipe, seeds))  # fresh: schedulers keep state
    noise = variation_noise(pipe, request, seeds, inputs.width, inputs.height)
    if noise is not None:
        pipe.scheduler = with_noise(pipe.scheduler, noise)  # img2img/inpaint add their noise there
    # per-image prompts are compared with the prompt as requested (the encoded one has its network
    # tags taken out and its embeddings put in)
    with plan.compiled.text_encoders_backend(model.pipe, model, plan.settings, plan.backend):
        prompts, text_kwargs = text_inputs(model, plan.request, plan.prompts, image_prompts, len(seeds), plan.networks)
    swaps = prompts.conditioning is not None and prompts.conditioning.changes
    kwargs: dict[str, Any] = dict(
        **text_kwargs,
        num_inference_steps=request.steps,
        guidance_scale=request.cfg_scale,
        width=inputs.width,
        height=inputs.height,
        generator=generators,  # ancestral/SDE samplers draw step noise from these too
        callback_on_step_end=steps.callback(prompts if swaps else None, len(seeds), inputs.steps_to_run(request)),
        callback_on_step_end_tensor_inputs=["latents", *prompts.conditioning.loop_tensor_names] if swaps else ["latents"],
        output_type="latent" if hires.uses_latents(request) else "pil",
        **mode_kwargs(pipe, request, inputs, generators),
    )
    if plan.refiner is not None:
        kwargs.update(refiner.base_kwargs(request))
    if noise is not None and (inputs.mode == "txt2img" or (inputs.mode == "inpaint" and request.denoising_strength >= 1)):
        kwargs["latents"] = noise  # pure noise to start from: no add_noise call to hand it to
    kwargs.update(control_kwargs(inputs.mode, controls), **ip_adapter_kwargs(controls))
    with (torch.inference_mode(), plan.compiled.unet_backend(pipe, model, plan.settings, plan.backend), steering(plan.settings, model, pipe, controls, request, seeds[0]),
          step_cache(pipe, request.cache_interval), nan_safe_decode(pipe.vae),
          composable(pipe, prompts.conditioning, len(seeds), inputs.steps_to_run(request)),
          token_merging(pipe, request.token_merging_ratio), skip_uncond_at_low_sigma(pipe, request.s_min_uncond)):
        output = pipe(**kwargs)
    return output.images, True


def text_inputs(model: LoadedModel, request: GenerationRequest, prompts: PromptInputs,
                image_prompts: list[tuple[str, str]] | None, batch: int,
                plan_networks: Any = None) -> tuple[PromptInputs, dict[str, Any]]:
    """The prompt arguments of one batch: the run's prepared prompts, or each image's own
    (extensions such as dynamic prompts give every image its prompt)."""
    if not image_prompts or all(pair == (request.prompt, request.negative_prompt) for pair in image_prompts):
        return prompts, prompts.pipeline_kwargs(batch)
    encoded = plan_networks.encoded if plan_networks is not None else (lambda text: text)
    prepared = [prepare_prompts(model.pipe, encoded(p), encoded(n), request.steps, request.clip_skip)
                for p, n in image_prompts]
    if len(prepared) == 1:
        return prepared[0], prepared[0].pipeline_kwargs(1)
    if any(item.conditioning is not None for item in prepared):
        raise RequestError("per-image prompts that use prompt syntax (weights, [a:b:0.5], BREAK, long prompts) "
                           "need batch size 1; use batch count for more images")
    merged: dict[str, Any] = prepared[0].pipeline_kwargs(1)
    merged["prompt"] = [item.prompt for item in prepared]
    merged["negative_prompt"] = [item.negative_prompt for item in prepared]
    return prepared[0], merged


def mode_kwargs(pipe: DiffusionPipeline, request: GenerationRequest, inputs: ModeInputs,
                generators: list[torch.Generator]) -> dict[str, Any]:
    if inputs.mode == "txt2img":
        return {"latents": initial_noise(pipe, inputs.width, inputs.height, generators)}
    # One source per image, so each image's VAE sample uses its own generator (with a single
    # source diffusers samples it with generator[0] only, and image i would not match seed + i).
    count = len(generators)
    if inputs.mode == "img2img":
        image: Any = [inputs.image] * count
        if request.resize_mode == imageops.LATENT_UPSCALE:
            image = latent_upscale(pipe, request.init_image, inputs.width, inputs.height).repeat(count, 1, 1, 1)
        return {"image": image, "strength": request.denoising_strength}
    kwargs: dict[str, Any] = {"image": [inputs.image] * count, "mask_image": [inputs.mask] * count,
                              "strength": request.denoising_strength}
    fill = INPAINTING_FILLS[request.inpainting_fill]
    if fill in ("latent noise", "latent nothing") and pipe.unet.config.in_channels == 4:
        latents = masked_latents(pipe, inputs.image, inputs.mask, fill, generators)
        kwargs.update(image=latents, masked_image_latents=latents)
    return kwargs
