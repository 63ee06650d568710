"""ControlNet units of a run: their control images (preprocessed at the generation size), their
ControlNets loaded once beside the base, the pipeline arguments that carry them, and the units that
steer the UNet without a ControlNet (reference_only, IP-Adapter) around a pass."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from diffusers import DiffusionPipeline

from studio.checkpoints.manager import LoadedModel
from studio.control.catalog import ControlNetEntry, controlnet_mismatch, discover_controlnets
from studio.control.ipadapter import adapter_images, image_encoder_dir, ip_adapters
from studio.control.loading import load_controlnet
from studio.control.preprocessors import PreprocessorSpec, annotator_dirs
from studio.control.reference import fidelity_for, reference_attention
from studio.control.simple import inpaint_condition
from studio.control.units import control_image, control_mode_hooks
from studio.errors import ModelError
from studio.generation.modes import ModeInputs
from studio.generation.results import Controls
from studio.request import ControlUnit, GenerationRequest, RequestError
from studio.settings import Settings

NO_MODEL = "None"  # the title a reference_only unit records (sd-webui-controlnet's "Model: None")


def prepare_controls(settings: Settings, model: LoadedModel, request: GenerationRequest, inputs: ModeInputs,
                     preprocessors: dict[str, PreprocessorSpec]) -> Controls:
    units = tuple(unit for unit in request.controlnet_units if unit.enabled)
    if not units:
        return Controls()
    images = control_images(settings, units, inputs.source, inputs.width, inputs.height, preprocessors, inputs.mask)
    return Controls(units, tuple(title_for(settings, model, unit) for unit in units), images)


def control_images(settings: Settings, units: tuple[ControlUnit, ...], source: Any, width: int, height: int,
                   preprocessors: dict[str, PreprocessorSpec], mask: Any = None) -> tuple[Any, ...]:
    annotators = annotator_dirs(settings.models_dir)
    try:
        return tuple(control_image(u, source, width, height, annotators, preprocessors, mask) for u in units)
    except ValueError as error:
        raise RequestError(f"ControlNet: {error}") from error


def at_size(settings: Settings, controls: Controls, width: int, height: int,
            preprocessors: dict[str, PreprocessorSpec]) -> Controls:
    """The same units with their control images made again at another size (hires fix's second
    pass, as sd-webui-controlnet makes its high-resolution control map)."""
    if not controls.units:
        return controls
    images = control_images(settings, controls.units, None, width, height, preprocessors)
    return Controls(controls.units, controls.titles, images)


def title_for(settings: Settings, model: LoadedModel, unit: ControlUnit) -> str:
    if unit.control_type == "reference":
        return NO_MODEL
    if unit.control_type == "ip-adapter":
        return _entry(settings, model, unit).title  # loaded by the pass that uses it
    return controlnet_for(settings, model, unit)


def _entry(settings: Settings, model: LoadedModel, unit: ControlUnit) -> ControlNetEntry:
    entries = discover_controlnets(settings, model.folder)
    if unit.model and unit.model != NO_MODEL:
        matches = [e for e in entries if unit.model in (e.title, Path(e.title).stem)]
    else:
        matches = [e for e in entries if e.control_type == unit.control_type]
    if not matches:
        wanted = unit.model or f"a {unit.control_type} model"
        where = "models/ControlNet or models/ipadapter" if unit.control_type == "ip-adapter" else "models/ControlNet"
        raise ModelError(f"{wanted} not found for {model.entry.title} (looked beside it and in {where})")
    return matches[0]


def controlnet_for(settings: Settings, model: LoadedModel, unit: ControlUnit) -> str:
    """The title of the unit's ControlNet, loading it once (only it: the base stays as it is)."""
    entry = _entry(settings, model, unit)
    if entry.control_type == "ip-adapter":
        raise RequestError(f"{entry.title} is an IP-Adapter: use it with an ip-adapter unit")
    mismatch = controlnet_mismatch(entry, model.pipe.unet.config)
    if mismatch:
        raise RequestError(f"ControlNet {entry.title} does not fit {model.entry.title}: {mismatch}")
    if entry.title not in model.controlnets:
        model.controlnets[entry.title] = load_controlnet(entry, model.pipe.unet.dtype, model.pipe.device)
    return entry.title


def control_kwargs(mode: str, controls: Controls) -> dict[str, Any]:
    """The control images and their weights and guidance windows, as diffusers' ControlNet pipelines
    take them (an inpaint control, RGBA, becomes the float array with -1 where it is to be repainted)."""
    controls = controls.controlnets()
    if not controls.units:
        return {}
    units = controls.units
    images = [inpaint_condition(image) if image.mode == "RGBA" else image for image in controls.images]
    single = len(units) == 1
    key = "image" if mode == "txt2img" else "control_image"
    return {
        key: images[0] if single else images,
        "controlnet_conditioning_scale": units[0].weight if single else [u.weight for u in units],
        "control_guidance_start": [u.guidance_start for u in units],
        "control_guidance_end": [u.guidance_end for u in units],
    }


def ip_adapter_kwargs(controls: Controls) -> dict[str, Any]:
    images = [image for _, _, image in controls.of_type("ip-adapter")]
    return {"ip_adapter_image": adapter_images(images)} if images else {}


@contextmanager
def steering(settings: Settings, model: LoadedModel, pipe: DiffusionPipeline, controls: Controls,
             request: GenerationRequest, seed: int) -> Iterator[None]:
    """Around one pass: the control modes' hooks on its ControlNets, its IP-Adapters loaded, and
    reference_only's attention on its UNet."""
    nets = controls.controlnets()
    cfg = request.cfg_scale > 1
    with ExitStack() as stack:
        stack.enter_context(control_mode_hooks([model.controlnets[t] for t in nets.titles], nets.units, cfg))
        adapters = controls.of_type("ip-adapter")
        if adapters:
            paths = [Path(_entry(settings, model, unit).location) for unit, _, _ in adapters]
            encoder = image_encoder_dir(settings.models_dir, paths[0])
            stack.enter_context(ip_adapters(pipe, paths, encoder, [unit.weight for unit, _, _ in adapters]))
        for unit, _, image in controls.of_type("reference"):
            latents = _encode(pipe, image)
            stack.enter_context(reference_attention(
                pipe.unet, latents, _alphas(pipe.scheduler), unit.weight,
                fidelity_for(unit.control_mode, unit.threshold_a), (unit.guidance_start, unit.guidance_end), cfg, seed))
        yield


def _alphas(scheduler: Any) -> torch.Tensor:
    """The training schedule's cumulative alphas (every sampler here follows the model's DDPM schedule)."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        from diffusers import DDPMScheduler

        alphas = DDPMScheduler.from_config(scheduler.config).alphas_cumprod
    return torch.as_tensor(alphas)


def _encode(pipe: DiffusionPipeline, image: Any) -> torch.Tensor:
    """The reference image's latents (the VAE's mean: the same every run)."""
    processed = pipe.image_processor.preprocess(image.convert("RGB")).to(pipe.vae.device, pipe.vae.dtype)
    with torch.inference_mode():
        latents = pipe.vae.encode(processed).latent_dist.mean
    return latents * pipe.vae.config.scaling_factor
