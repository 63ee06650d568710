"""Engine.run(request, on_step) -> images, on the one resident model.

One run at a time (diffusers pipelines share scheduler state and are not thread-safe); the UI,
the API and the CLI all come through here. Every image has its own seeded generator
(image i of a batch uses seed + i, as A1111 does), so a seed reproduces its image.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from pathlib import Path

from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image, DiffusionPipeline
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from PIL import Image

from studio import extras, hires, imageops, modes
from studio.extras import ExtrasRequest
from studio.control.models import discover_controlnets, load_controlnet
from studio.control.preprocessors import PREPROCESSORS
from studio.control.units import control_image, control_mode_hooks
from studio.errors import ModelError
from studio.hardware import pick_device
from studio.latents import initial_noise, latent_upscale, masked_latents, vae_round_trip
from studio.models import LoadedModel, ModelManager
from studio.request import INPAINTING_FILLS, MAX_SEED, ControlUnit, GenerationRequest, RequestError
from studio.samplers import SAMPLERS, make_scheduler, resolve_sampler_name
from studio.upscalers import Upscalers, image_upscaler_names


@dataclass
class Progress:
    """What a progress bar or the API's /progress shows. Replaced, never shared across runs."""

    step: int = 0
    steps: int = 0
    image: int = 0  # index of the batch being sampled (0-based)
    images: int = 0  # number of batches in this run
    started: float = 0.0
    phase: str = ""  # "hires" while the hires fix's second pass runs
    latents: torch.Tensor | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        if not self.steps or not self.images:
            return 0.0
        return min(1.0, (self.image * self.steps + self.step) / (self.steps * self.images))

    @property
    def eta(self) -> float:
        elapsed = time.monotonic() - self.started
        return elapsed / self.fraction - elapsed if self.fraction > 0 else 0.0


StepCallback = Callable[[Progress], None]
PIPELINE_BUILDERS = {
    "txt2img": AutoPipelineForText2Image,
    "img2img": AutoPipelineForImage2Image,
    "inpaint": AutoPipelineForInpainting,
}


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    index: int  # position in the whole run (batch pos + iteration * batch size)


@dataclass(frozen=True)
class Controls:
    """The enabled ControlNet units of a run with their loaded models and prepared images."""

    units: tuple[ControlUnit, ...] = ()
    titles: tuple[str, ...] = ()
    images: tuple[Image.Image, ...] = ()


@dataclass(frozen=True)
class RunResult:
    request: GenerationRequest  # resolved: real seed, size, model title, sampler name
    model: LoadedModel
    images: list[GeneratedImage]
    interrupted: bool
    controls: Controls = Controls()


class Engine:
    def __init__(self, models: ModelManager, samplers: dict | None = None, preprocessors: dict | None = None) -> None:
        self.models = models
        self.samplers = SAMPLERS if samplers is None else samplers
        self.preprocessors = PREPROCESSORS if preprocessors is None else preprocessors
        self._lock = threading.Lock()
        self._interrupt = threading.Event()
        self.progress = Progress()
        self.upscalers = Upscalers(models.settings.models_dir, pick_device(models.settings.device))

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def interrupted(self) -> bool:
        """An interrupt is pending for the running job."""
        return self._interrupt.is_set()

    def interrupt(self) -> None:
        """Stop the running job within one step; images finished before it are kept."""
        if self.busy:
            self._interrupt.set()

    def run_extras(self, images: list[Image.Image], request: ExtrasRequest) -> list[Image.Image]:
        """Upscale finished images (the Extras tab/API), one job at a time like generation."""
        request.validate(image_upscaler_names(self.upscalers.entries()))
        with self._lock:
            return [extras.process(image, request, self.upscalers) for image in images]

    def load_model(self, title: str) -> LoadedModel:
        """Switch models between jobs, never during one (the UI and the API share this lock)."""
        with self._lock:
            return self.models.load(title)

    def resolve(self, request: GenerationRequest, model: LoadedModel) -> GenerationRequest:
        """Fill what the request left to the engine: seed, size, model title, canonical sampler."""
        seed = request.seed if request.seed >= 0 else random.randint(0, MAX_SEED)
        return request.replace(
            seed=seed,
            width=request.width or model.native_size,
            height=request.height or model.native_size,
            model=model.entry.title,
            sampler_name=resolve_sampler_name(request.sampler_name, self.samplers),
            hr_sampler_name=self._hires_sampler(request.hr_sampler_name),
        )

    def _hires_sampler(self, name: str) -> str:
        if not name:
            return ""
        if name in self.samplers:
            return name
        try:
            return resolve_sampler_name(name, self.samplers)
        except KeyError:
            raise RequestError(f"unknown hr_sampler_name {name!r}; choose one of: {', '.join(self.samplers)}") from None

    def run(self, request: GenerationRequest, on_step: StepCallback | None = None) -> RunResult:
        request.validate(samplers=None)
        with self._lock:
            self._interrupt.clear()
            self.progress = Progress(steps=request.steps, images=request.n_iter, started=time.monotonic())
            model = self.models.get(request.model)
            resolved = self.resolve(request, model).validate(samplers=self.samplers)
            return self._run_locked(resolved, model, on_step)

    def _run_locked(self, request: GenerationRequest, model: LoadedModel, on_step: StepCallback | None) -> RunResult:
        if model.pipe.unet.config.in_channels != 4 and request.mode != "inpaint":
            # 9-channel inpainting UNets take a mask and a masked image with every step.
            raise RequestError(f"{model.entry.title} is an inpainting model: use it with an image and a mask (Inpaint)")
        inputs = modes.prepare(request)
        controls = self._prepare_controls(model, request, inputs)
        if request.enable_hr:
            self.upscalers.get(request.hr_upscaler, "hr_upscaler")  # an unknown name fails before sampling
        steps = inputs.steps_to_run(request) + hires.steps_to_run(request)
        self.progress = Progress(steps=steps, images=request.n_iter, started=time.monotonic())
        images: list[GeneratedImage] = []
        for iteration in range(request.n_iter):
            self.progress.image, self.progress.step, self.progress.phase = iteration, 0, ""
            first = iteration * request.batch_size
            seeds = [request.seed + first + i for i in range(request.batch_size)]
            batch = self._sample(model, request, inputs, controls, seeds, on_step)
            if self._interrupt.is_set():
                return RunResult(request, model, images, True, controls)
            images += [GeneratedImage(modes.finish(inputs, img), s, first + i)
                       for i, (img, s) in enumerate(zip(batch, seeds))]
        return RunResult(request, model, images, False, controls)

    def pipeline_for(self, model: LoadedModel, mode: str, controlnets: tuple[str, ...] = ()) -> DiffusionPipeline:
        """The mode's pipeline over the already-loaded components (from_pipe: no copy, no load),
        with the named ControlNets attached when there are any."""
        key = "|".join((mode, *controlnets))
        if key not in model.mode_pipelines:
            extra: dict[str, Any] = {}
            if controlnets:
                nets = [model.controlnets[title] for title in controlnets]
                extra["controlnet"] = nets[0] if len(nets) == 1 else MultiControlNetModel(nets)
            model.mode_pipelines[key] = PIPELINE_BUILDERS[mode].from_pipe(model.pipe, **extra)
            model.mode_pipelines[key].set_progress_bar_config(disable=True)
        return model.mode_pipelines[key]

    def controlnet_for(self, model: LoadedModel, unit: ControlUnit) -> str:
        """The title of the unit's ControlNet, loading it once (only it: the base stays as it is)."""
        entries = discover_controlnets(self.models.settings, model.folder)
        if unit.model:
            matches = [e for e in entries if unit.model in (e.title, Path(e.title).stem)]
        else:
            matches = [e for e in entries if e.control_type == unit.control_type]
        if not matches:
            wanted = unit.model or f"a {unit.control_type} ControlNet"
            raise ModelError(f"{wanted} not found for {model.entry.title} (looked beside it and in models/ControlNet)")
        entry = matches[0]
        if entry.title not in model.controlnets:
            model.controlnets[entry.title] = load_controlnet(entry, model.pipe.unet.dtype, model.pipe.device)
        return entry.title

    def _sample(
        self,
        model: LoadedModel,
        request: GenerationRequest,
        inputs: modes.ModeInputs,
        controls: Controls,
        seeds: list[int],
        on_step: StepCallback | None,
    ) -> list[Image.Image]:
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        if inputs.mode != "txt2img" and inputs.steps_to_run(request) == 0:
            return [vae_round_trip(model.pipe, inputs.image)] * len(seeds)  # strength 0: nothing to denoise
        pipe = self.pipeline_for(model, inputs.mode, controls.titles)
        # A fresh scheduler per run: schedulers keep state between steps.
        pipe.scheduler = make_scheduler(request.sampler_name, model.pipe.scheduler.config, self.samplers)
        common = dict(
            prompt=[request.prompt] * len(seeds),
            negative_prompt=[request.negative_prompt] * len(seeds),
            num_inference_steps=request.steps,
            guidance_scale=request.cfg_scale,
            width=inputs.width,
            height=inputs.height,
            generator=generators,  # ancestral/SDE samplers draw step noise from these too
            callback_on_step_end=self._step_callback(on_step),
            callback_on_step_end_tensor_inputs=["latents"],
            output_type="latent" if hires.uses_latents(request) else "pil",
        )
        kwargs = {**common, **self._mode_kwargs(pipe, request, inputs, generators)}
        nets = [model.controlnets[title] for title in controls.titles]
        if controls.units:
            kwargs.update(self._control_kwargs(inputs.mode, controls))
        with torch.inference_mode(), control_mode_hooks(nets, controls.units, cfg_active=request.cfg_scale > 1):
            output = pipe(**kwargs)
        if request.enable_hr:
            return self._hires_pass(model, request, output.images, seeds, on_step)
        return list(output.images)

    def _hires_pass(self, model: LoadedModel, request: GenerationRequest, first: Any, seeds: list[int],
                    on_step: StepCallback | None) -> list[Image.Image]:
        """Upscale the first pass and denoise it again with img2img (see studio/hires.py)."""
        if self._interrupt.is_set():
            return []
        source = hires.upscale(model.pipe, first, request, self.upscalers)
        if hires.steps_to_run(request) == 0:
            return hires.without_denoising(model.pipe, source)
        pipe = self.pipeline_for(model, "img2img")
        pipe.scheduler = make_scheduler(hires.sampler(request), model.pipe.scheduler.config, self.samplers)
        self.progress.phase = "hires"
        offset = self.progress.step
        with torch.inference_mode():
            output = pipe(**hires.pass_kwargs(request, source, seeds),
                          callback_on_step_end=self._step_callback(on_step, offset),
                          callback_on_step_end_tensor_inputs=["latents"], output_type="pil")
        return list(output.images)

    def _prepare_controls(self, model: LoadedModel, request: GenerationRequest, inputs: modes.ModeInputs) -> Controls:
        units = tuple(unit for unit in request.controlnet_units if unit.enabled)
        if not units:
            return Controls()
        annotators = self.models.settings.models_dir / "annotators"
        try:
            images = tuple(control_image(u, inputs.source, inputs.width, inputs.height, annotators, self.preprocessors)
                           for u in units)
        except ValueError as error:
            raise RequestError(f"ControlNet: {error}") from error
        return Controls(units, tuple(self.controlnet_for(model, unit) for unit in units), images)

    @staticmethod
    def _control_kwargs(mode: str, controls: Controls) -> dict[str, Any]:
        units, images = controls.units, controls.images
        single = len(units) == 1
        key = "image" if mode == "txt2img" else "control_image"
        return {
            key: images[0] if single else list(images),
            "controlnet_conditioning_scale": units[0].weight if single else [u.weight for u in units],
            "control_guidance_start": [u.guidance_start for u in units],
            "control_guidance_end": [u.guidance_end for u in units],
        }

    def _mode_kwargs(
        self, pipe: DiffusionPipeline, request: GenerationRequest, inputs: modes.ModeInputs, generators: list[torch.Generator]
    ) -> dict[str, Any]:
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

    def _step_callback(self, on_step: StepCallback | None, offset: int = 0) -> Callable[..., dict[str, Any]]:
        def callback(pipe: DiffusionPipeline, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            self.progress.step = offset + step + 1
            self.progress.latents = tensors.get("latents")
            if self._interrupt.is_set():
                pipe._interrupt = True  # diffusers skips the remaining steps
            if on_step is not None:
                on_step(self.progress)
            return {}

        return callback
