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
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DiffusionPipeline,
)
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from PIL import Image

from studio.checkpoints.devices import pick_device
from studio.checkpoints.manager import LoadedModel, ModelManager
from studio.checkpoints.upscaler_files import image_upscaler_names
from studio.checkpoints.upscalers import Upscalers
from studio.control.catalog import controlnet_mismatch, discover_controlnets
from studio.control.loading import load_controlnet
from studio.control.preprocessors import PREPROCESSORS
from studio.control.units import control_image, control_mode_hooks
from studio.errors import ModelError
from studio.generation import extras, hires, imageops, modes
from studio.generation import refiner as refiners
from studio.generation.extras_request import ExtrasRequest
from studio.generation.latents import initial_noise, latent_upscale, masked_latents, vae_round_trip
from studio.generation.previews import Previewer
from studio.generation.samplers import (
    SAMPLERS,
    SamplerUnavailableError,
    make_scheduler,
    resolve_sampler_name,
    resolve_schedule_type,
)
from studio.generation.stepcache import step_cache
from studio.generation.vae_guard import nan_safe_decode
from studio.generation.variation import variation_noise, with_noise
from studio.networks.manager import AppliedNetworks, NetworkManager
from studio.prompting.conditioning import PromptInputs, prepare_prompts
from studio.request import INPAINTING_FILLS, MAX_SEED, ControlUnit, GenerationRequest, RequestError


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


class RunControl(Protocol):
    """A job's own stop events (studio.service.queue.Job): set by its owner's Interrupt / Skip."""

    interrupt: threading.Event
    skip: threading.Event


# image index in the run -> (prompt, negative prompt) of that image (e.g. dynamic prompts per image)
PromptsFor = Callable[[int], "tuple[str, str]"]
ImageCallback = Callable[["RunResult", "GeneratedImage"], None]
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
    prompts: tuple[str, str] | None = None  # its own (prompt, negative) when a PromptsFor gave them


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
    skipped: int = 0  # iterations (batch-count steps) dropped by Engine.skip()
    networks: AppliedNetworks = AppliedNetworks()  # LoRAs, embeddings and VAE the run used, with hashes
    refiner: refiners.LoadedRefiner | None = None  # the SDXL refiner the run used (studio/generation/refiner.py)


class Engine:
    def __init__(self, models: ModelManager, samplers: dict | None = None, preprocessors: dict | None = None) -> None:
        self.models = models
        self.samplers = SAMPLERS if samplers is None else samplers
        self.preprocessors = PREPROCESSORS if preprocessors is None else preprocessors
        self.networks = NetworkManager(models.settings)
        self.refiners = refiners.Refiners(models.settings)  # the SDXL refiner, kept loaded beside the base
        self._lock = threading.Lock()
        self._interrupt = threading.Event()
        self._skip = threading.Event()
        self._runner: int | None = None  # ident of the thread running a job
        self._iterations: range | None = None  # the part of the request's batch count this run makes
        self.progress = Progress()
        self.upscalers = Upscalers(models.settings.models_dir, pick_device(models.settings.device))
        self.previewer = Previewer(models.settings.models_dir / "VAE-approx")

    def preview(self, latents: torch.Tensor, method: str) -> Image.Image:
        """A live preview of the running job's latents (call from its step callback)."""
        model = self.models.loaded
        if model is None:
            raise ModelError("no model is loaded")
        return self.previewer.preview(latents, model.pipe, method)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def interrupted(self) -> bool:
        """An interrupt is pending for the running job."""
        return self._interrupt.is_set()

    @property
    def running_here(self) -> bool:
        """The calling thread is the one running the current job (e.g. the CLI's main thread)."""
        return self.busy and self._runner == threading.get_ident()

    def interrupt(self) -> None:
        """Stop the running job within one step; images finished before it are kept."""
        if self.busy:
            self._interrupt.set()

    def run_extras(self, images: list[Image.Image], request: ExtrasRequest) -> list[Image.Image]:
        """Upscale finished images (the Extras tab/API), one job at a time like generation."""
        request.validate(image_upscaler_names(self.upscalers.entries()))
        with self._lock:
            return [extras.process(image, request, self.upscalers) for image in images]

    def skip(self) -> None:
        """Drop the iteration being sampled (stopped within one step) and go on with the next
        (A1111's Skip: one batch-count iteration, all images of its batch). Idle: nothing happens."""
        if self.busy:
            self._skip.set()

    def load_model(self, title: str, *, allow_hub: bool = False) -> LoadedModel:
        """Switch models between jobs, never during one (the UI and the API share this lock).
        `allow_hub`: the caller may name a Hub repo id (still needs Settings.allow_hub)."""
        with self._lock:
            return self.models.load(title, allow_hub=allow_hub)

    def resolve(self, request: GenerationRequest, model: LoadedModel) -> GenerationRequest:
        """Fill what the request left to the engine: seed, size, model title, canonical sampler."""
        seed = request.seed if request.seed >= 0 else random.randint(0, MAX_SEED)
        try:
            schedule = resolve_schedule_type(request.scheduler)
        except ValueError as error:
            raise RequestError(f"scheduler: {error}") from error
        subseed = request.subseed
        if request.subseed_strength > 0 and subseed < 0:
            subseed = random.randint(0, MAX_SEED)
        return request.replace(
            seed=seed,
            subseed=subseed,
            width=request.width or model.native_size,
            height=request.height or model.native_size,
            model=model.entry.title,
            sampler_name=resolve_sampler_name(request.sampler_name, self.samplers),
            scheduler=schedule,
            vae=self.networks.resolve_vae(request.vae),
            hr_sampler_name=self._hires_sampler(request.hr_sampler_name),
            refiner_checkpoint=self.refiners.resolve(request.refiner_checkpoint).title if request.uses_refiner else None,
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

    def scheduler_for(self, request: GenerationRequest, model: LoadedModel | refiners.LoadedRefiner, seeds: list[int] | None = None) -> Any:
        """A fresh scheduler for the request's sampler and schedule type on this model;
        RequestError when the sampler cannot follow the model's schedule or take the schedule type."""
        try:
            scheduler = make_scheduler(request.sampler_name, model.pipe.scheduler.config, self.samplers, request.scheduler)
        except SamplerUnavailableError as error:
            raise RequestError(str(error)) from error
        if seeds is not None and hasattr(scheduler, "noise_sampler_seed"):
            scheduler.noise_sampler_seed = list(seeds)  # DPM++ SDE: Brownian noise from each image's seed
        return scheduler

    def run(self, request: GenerationRequest, on_step: StepCallback | None = None,
            prompts_for: PromptsFor | None = None, on_image: ImageCallback | None = None,
            control: RunControl | None = None, iterations: range | None = None) -> RunResult:
        """`prompts_for(index)` gives each image its own prompt (called once per image, in order);
        `on_image(result so far, image)` is called as each image finishes (to save it at once: an
        interrupt or SIGTERM later in the run keeps it). `control`: the job's own interrupt and skip
        events (studio.service.queue.Job), so stopping one job never stops another; `iterations`: run only
        these batch-count iterations of the request (seeds and indexes as in the whole run)."""
        request.validate(samplers=None)
        with self._lock:
            self._runner = threading.get_ident()
            try:
                self._interrupt = control.interrupt if control is not None else threading.Event()
                self._skip = control.skip if control is not None else threading.Event()
                self._iterations = iterations
                self.progress = Progress(steps=request.steps, images=request.n_iter, started=time.monotonic())
                model = self.models.get(request.model)
                resolved = self.resolve(request, model).validate(samplers=self.samplers)
                self.scheduler_for(resolved, model)  # refuse a sampler the model cannot use before any work
                return self._run_locked(resolved, model, on_step, prompts_for, on_image)
            finally:
                self._runner = None

    def _run_locked(self, request: GenerationRequest, model: LoadedModel, on_step: StepCallback | None,
                    prompts_for: PromptsFor | None = None, on_image: ImageCallback | None = None) -> RunResult:
        if model.pipe.unet.config.in_channels != 4 and request.mode != "inpaint":
            # 9-channel inpainting UNets take a mask and a masked image with every step.
            raise RequestError(f"{model.entry.title} is an inpainting model: use it with an image and a mask (Inpaint)")
        inputs = modes.prepare(request)
        controls = self._prepare_controls(model, request, inputs)
        refiner = self.refiner_for(model, request)
        networks = self.networks.apply(model, request)  # LoRA tags, embeddings, VAE (cached on the model)
        encoded = request.replace(prompt=networks.prompt, negative_prompt=networks.negative_prompt)
        # A1111 schedules prompt edits over the requested steps, also in img2img (where fewer run).
        prompts = prepare_prompts(model.pipe, encoded.prompt, encoded.negative_prompt, request.steps, request.clip_skip)
        if request.enable_hr:
            self.upscalers.get(request.hr_upscaler, "hr_upscaler")  # an unknown name fails before sampling
        steps = inputs.steps_to_run(request) + hires.steps_to_run(request)
        self.progress = Progress(steps=steps, images=request.n_iter, started=time.monotonic())
        images: list[GeneratedImage] = []
        skipped = 0
        for iteration in self._iterations or range(request.n_iter):
            self.progress.image, self.progress.step, self.progress.phase = iteration, 0, ""
            first = iteration * request.batch_size
            seeds = [request.seed + first + i for i in range(request.batch_size)]
            image_prompts = [prompts_for(first + i) for i in range(request.batch_size)] if prompts_for else None
            batch = self._sample(model, encoded, inputs, prompts, controls, seeds, on_step, image_prompts, refiner)
            if self._interrupt.is_set():
                return RunResult(request, model, images, True, controls, skipped, networks, refiner)
            if self._skip.is_set():  # this iteration was cut short: drop it, go on with the next
                self._skip.clear()
                skipped += 1
                continue
            finished = [GeneratedImage(modes.finish(inputs, img), s, first + i, image_prompts[i] if image_prompts else None)
                        for i, (img, s) in enumerate(zip(batch, seeds))]
            images += finished
            if on_image is not None:  # a batch's images finish together; each sees its whole batch
                so_far = RunResult(request, model, list(images), False, controls, skipped, networks, refiner)
                for item in finished:
                    on_image(so_far, item)
        return RunResult(request, model, images, False, controls, skipped, networks, refiner)

    def refiner_for(self, model: LoadedModel, request: GenerationRequest) -> refiners.LoadedRefiner | None:
        """The request's SDXL refiner, loaded once and kept (None without one)."""
        if not request.uses_refiner:
            return None
        refiners.check_base(model.pipe, model.entry.title)
        if self.refiners.resolve(request.refiner_checkpoint) == model.entry:  # the base refines itself: no second copy
            refiner = refiners.LoadedRefiner(model.entry, self.pipeline_for(model, "img2img"), model.hash)
        else:
            refiner = self.refiners.get(request.refiner_checkpoint)
        self.scheduler_for(request, refiner)  # the refiner must take the sampler too, before any work
        return refiner

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
        mismatch = controlnet_mismatch(entry, model.pipe.unet.config)
        if mismatch:
            raise RequestError(f"ControlNet {entry.title} does not fit {model.entry.title}: {mismatch}")
        if entry.title not in model.controlnets:
            model.controlnets[entry.title] = load_controlnet(entry, model.pipe.unet.dtype, model.pipe.device)
        return entry.title

    def _sample(
        self,
        model: LoadedModel,
        request: GenerationRequest,
        inputs: modes.ModeInputs,
        prompts: PromptInputs,
        controls: Controls,
        seeds: list[int],
        on_step: StepCallback | None,
        image_prompts: list[tuple[str, str]] | None = None,
        refiner: refiners.LoadedRefiner | None = None,
    ) -> list[Image.Image]:
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        if inputs.mode != "txt2img" and inputs.steps_to_run(request) == 0:
            return [vae_round_trip(model.pipe, inputs.image)] * len(seeds)  # strength 0: nothing to denoise
        pipe = self.pipeline_for(model, inputs.mode, controls.titles)
        # A fresh scheduler per run: schedulers keep state between steps.
        pipe.scheduler = self.scheduler_for(request, model, seeds)
        noise = variation_noise(pipe, request, seeds, inputs.width, inputs.height)
        if noise is not None:
            pipe.scheduler = with_noise(pipe.scheduler, noise)  # img2img/inpaint add their noise there
        prompts, text_kwargs = self._text_inputs(model, request, prompts, image_prompts, len(seeds))
        swaps = prompts.conditioning is not None and prompts.conditioning.changes
        common = dict(
            **text_kwargs,
            num_inference_steps=request.steps,
            guidance_scale=request.cfg_scale,
            width=inputs.width,
            height=inputs.height,
            generator=generators,  # ancestral/SDE samplers draw step noise from these too
            callback_on_step_end=self._step_callback(on_step, prompts if swaps else None, len(seeds),
                                                     inputs.steps_to_run(request)),
            callback_on_step_end_tensor_inputs=["latents", *prompts.conditioning.loop_tensor_names] if swaps else ["latents"],
            output_type="latent" if hires.uses_latents(request) else "pil",
        )
        kwargs = {**common, **self._mode_kwargs(pipe, request, inputs, generators)}
        if refiner is not None:
            kwargs.update(refiners.base_kwargs(request))
        if noise is not None and (inputs.mode == "txt2img" or (inputs.mode == "inpaint" and request.denoising_strength >= 1)):
            kwargs["latents"] = noise  # pure noise to start from: no add_noise call to hand it to
        nets = [model.controlnets[title] for title in controls.titles]
        if controls.units:
            kwargs.update(self._control_kwargs(inputs.mode, controls))
        with (torch.inference_mode(), control_mode_hooks(nets, controls.units, cfg_active=request.cfg_scale > 1),
              step_cache(pipe, request.cache_interval), nan_safe_decode(pipe.vae)):
            output = pipe(**kwargs)
        if request.enable_hr:
            return self._hires_pass(model, request, output.images, seeds, on_step)
        if refiner is not None:
            return self._refiner_pass(refiner, request, output.images, seeds, on_step)
        return list(output.images)

    def _refiner_pass(self, refiner: refiners.LoadedRefiner, request: GenerationRequest, latents: torch.Tensor,
                      seeds: list[int], on_step: StepCallback | None) -> list[Image.Image]:
        """The refiner finishes the base's latents from the switch point (see studio/generation/refiner.py)."""
        if self._interrupt.is_set() or self._skip.is_set():
            return []
        pipe = refiner.pipe
        pipe.scheduler = self.scheduler_for(request, refiner, seeds)
        prompts = prepare_prompts(pipe, request.prompt, request.negative_prompt, request.steps, request.clip_skip)
        self.progress.phase = "refiner"
        with torch.inference_mode():
            output = pipe(**refiners.pass_kwargs(request, prompts, latents, seeds),
                          callback_on_step_end=self._step_callback(on_step, offset=self.progress.step),
                          callback_on_step_end_tensor_inputs=["latents"], output_type="pil")
        return list(output.images)

    def _hires_pass(self, model: LoadedModel, request: GenerationRequest, first: Any, seeds: list[int],
                    on_step: StepCallback | None) -> list[Image.Image]:
        """Upscale the first pass and denoise it again with img2img (see studio/generation/hires.py)."""
        if self._interrupt.is_set():
            return []
        source = hires.upscale(model.pipe, first, request, self.upscalers)
        if hires.steps_to_run(request) == 0:
            return hires.without_denoising(model.pipe, source)
        pipe = self.pipeline_for(model, "img2img")
        pipe.scheduler = self.scheduler_for(request.replace(sampler_name=hires.sampler(request)), model, seeds)
        width, height = request.hires_size()
        noise = variation_noise(pipe, request, seeds, width, height)
        if noise is not None:
            pipe.scheduler = with_noise(pipe.scheduler, noise)
        self.progress.phase = "hires"
        offset = self.progress.step
        with torch.inference_mode(), nan_safe_decode(pipe.vae):
            output = pipe(**hires.pass_kwargs(request, source, seeds),
                          callback_on_step_end=self._step_callback(on_step, offset=offset),
                          callback_on_step_end_tensor_inputs=["latents"], output_type="pil")
        return list(output.images)

    @staticmethod
    def _text_inputs(model: LoadedModel, request: GenerationRequest, prompts: PromptInputs,
                     image_prompts: list[tuple[str, str]] | None, batch: int) -> tuple[PromptInputs, dict[str, Any]]:
        """The prompt arguments of one batch: the run's prepared prompts, or each image's own
        (extensions such as dynamic prompts give every image its prompt)."""
        if not image_prompts or all(pair == (request.prompt, request.negative_prompt) for pair in image_prompts):
            return prompts, prompts.pipeline_kwargs(batch)
        prepared = [prepare_prompts(model.pipe, p, n, request.steps, request.clip_skip) for p, n in image_prompts]
        if len(prepared) == 1:
            return prepared[0], prepared[0].pipeline_kwargs(1)
        if any(item.conditioning is not None for item in prepared):
            raise RequestError("per-image prompts that use prompt syntax (weights, [a:b:0.5], BREAK, long prompts) "
                               "need batch size 1; use batch count for more images")
        merged: dict[str, Any] = prepared[0].pipeline_kwargs(1)
        merged["prompt"] = [item.prompt for item in prepared]
        merged["negative_prompt"] = [item.negative_prompt for item in prepared]
        return prepared[0], merged

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

    def _step_callback(self, on_step: StepCallback | None, prompts: PromptInputs | None = None, batch: int = 1,
                       steps: int = 0, offset: int = 0) -> Callable[..., dict[str, Any]]:
        def callback(pipe: DiffusionPipeline, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            self.progress.step = offset + step + 1
            self.progress.latents = tensors.get("latents")
            if self._interrupt.is_set() or self._skip.is_set():
                pipe._interrupt = True  # diffusers skips the remaining steps
            if on_step is not None:
                on_step(self.progress)
            if prompts is None or prompts.conditioning is None:
                return {}
            # Second-order samplers run about two loop iterations per step: the step comes from the loop's progress.
            next_step = (step + 1) * steps // pipe.num_timesteps
            return prompts.conditioning.loop_tensors(next_step, batch, pipe.do_classifier_free_guidance)

        return callback
