"""The pipeline and scheduler a pass runs with: each mode's pipeline built once over the loaded
components (from_pipe: no copy, no load), and a fresh scheduler for every pass (schedulers keep
state between steps, so two runs never share one)."""
from __future__ import annotations

from typing import Any, Mapping

from diffusers import DiffusionPipeline

from studio.checkpoints.manager import LoadedModel
from studio.generation import from_pipe
from studio.generation.samplers import SamplerSpec, SamplerUnavailableError, make_scheduler
from studio.request import GenerationRequest, RequestError

AUTO_PIPELINES = {"txt2img": "AutoPipelineForText2Image", "img2img": "AutoPipelineForImage2Image",
                  "inpaint": "AutoPipelineForInpainting"}


def pipeline_for(model: LoadedModel, mode: str, controlnets: tuple[str, ...] = ()) -> DiffusionPipeline:
    """The mode's pipeline over the already-loaded components, with the named ControlNets attached
    when there are any (cached on the model, dropped with it)."""
    key = "|".join((mode, *controlnets))
    if key not in model.mode_pipelines:
        known = None if controlnets else from_pipe.known_class(model.pipe, mode)
        model.mode_pipelines[key] = from_pipe.build(known, model.pipe) if known else _auto(model, mode, controlnets)
        model.mode_pipelines[key].set_progress_bar_config(disable=True)
    return model.mode_pipelines[key]


def _auto(model: LoadedModel, mode: str, controlnets: tuple[str, ...]) -> DiffusionPipeline:
    """diffusers' AutoPipeline for the mode (imported here: it imports every pipeline family)."""
    import diffusers
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    extra: dict[str, Any] = {}
    if controlnets:
        nets = [model.controlnets[title] for title in controlnets]
        extra["controlnet"] = nets[0] if len(nets) == 1 else MultiControlNetModel(nets)
    return getattr(diffusers, AUTO_PIPELINES[mode]).from_pipe(model.pipe, **extra)


def scheduler_for(samplers: Mapping[str, SamplerSpec], request: GenerationRequest, pipe: DiffusionPipeline,
                  seeds: list[int] | None = None) -> Any:
    """A fresh scheduler for the request's sampler and schedule type on this pipeline's model;
    RequestError when the sampler cannot follow the model's schedule or take the schedule type."""
    try:
        scheduler = make_scheduler(request.sampler_name, pipe.scheduler.config, samplers, request.scheduler,
                                   sdxl="text_encoder_2" in pipe.components, eta=request.eta)
    except SamplerUnavailableError as error:
        raise RequestError(str(error)) from error
    if seeds is not None and hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = list(seeds)  # DPM++ SDE: Brownian noise from each image's seed
    if getattr(scheduler, "needs_uncond", False) and getattr(pipe, "unet", None) is not None:
        scheduler.uncond_source = last_unet_output(pipe.unet)  # CFG++ renoises along the unconditional part
    return scheduler


def last_unet_output(unet: Any) -> Any:
    """A reader of the UNet's last output (batch: unconditional half first when CFG runs), kept
    by a forward hook installed once per UNet."""
    if not hasattr(unet, "_studio_last_output"):
        def keep(_module: Any, _args: Any, output: Any) -> None:
            unet._studio_last_output = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)

        unet._studio_last_output = None
        unet.register_forward_hook(keep)
    return lambda: unet._studio_last_output
