"""Engine.run(request, on_step) -> images, on the one resident model.

One run at a time (diffusers pipelines share scheduler state and are not thread-safe); the UI,
the API and the CLI all come through the generation service to here. A run reads like a diffusers
pipeline's __call__: it resolves the request, prepares what every pass needs once (mode inputs,
ControlNet units, the refiner, networks, prompts), then samples each batch-count iteration with the
base pass and at most one second pass (hires fix or the SDXL refiner). Every image has its own
seeded generator (image i of a batch uses seed + i, as A1111 does), so a seed reproduces its image.
"""
from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from PIL import Image

from studio.checkpoints.devices import pick_device
from studio.checkpoints.faces import FaceRestorers
from studio.checkpoints.manager import LoadedModel, ModelManager
from studio.checkpoints.openvino_unet import resolve_backend
from studio.checkpoints.refiners import Refiners
from studio.checkpoints.upscaler_files import image_upscaler_names
from studio.checkpoints.upscalers import Upscalers
from studio.control.preprocessors import PREPROCESSORS
from studio.errors import ModelError
from studio.generation import modes, outpaint
from studio.generation.backend import CompiledParts, check_request
from studio.generation.controls import prepare_controls
from studio.generation.extras import process as upscale_image
from studio.generation.extras_request import ExtrasRequest
from studio.generation.latents import decode
from studio.generation.passes import base, hires, refiner
from studio.generation.pipelines import scheduler_for
from studio.generation.plan import RunPlan
from studio.generation.previews import Previewer
from studio.generation.results import (
    GeneratedImage,
    ImageCallback,
    Progress,
    PromptsFor,
    RunControl,
    RunResult,
    StepCallback,
)
from studio.generation.samplers import SAMPLERS, resolve_sampler_name, resolve_schedule_type
from studio.generation.steps import Steps
from studio.networks.manager import NetworkManager
from studio.prompting.conditioning import prepare_prompts
from studio.request import MAX_SEED, GenerationRequest, RequestError


class Engine:
    def __init__(self, models: ModelManager, samplers: dict | None = None, preprocessors: dict | None = None) -> None:
        self.models = models
        self.samplers = SAMPLERS if samplers is None else samplers
        self.preprocessors = PREPROCESSORS if preprocessors is None else preprocessors
        self.networks = NetworkManager(models.settings)
        self.refiners = Refiners(models.settings)  # the SDXL refiner, kept loaded beside the base
        self.upscalers = Upscalers(models.settings.models_dir, pick_device(models.settings.device))
        self.faces = FaceRestorers(models.settings.models_dir, pick_device(models.settings.device))
        self.compiled = CompiledParts()  # --backend openvino's compiled parts
        self.previewer = Previewer(models.settings.models_dir / "VAE-approx")
        self.progress = Progress()
        self._lock = threading.Lock()
        self._interrupt = threading.Event()
        self._skip = threading.Event()
        self._runner: int | None = None  # ident of the thread running a job
        # The UNet backend's choice (auto, eager, openvino): the flag, or the options store's `backend` once wired.
        self.backend_choice: Callable[[], str] = lambda: models.settings.backend

    # -- the run ---------------------------------------------------------------------------------
    def run(self, request: GenerationRequest, on_step: StepCallback | None = None,
            prompts_for: PromptsFor | None = None, on_image: ImageCallback | None = None,
            control: RunControl | None = None, iterations: range | None = None) -> RunResult:
        """`prompts_for(index)` gives each image its own prompt (called once per image, in order);
        `on_image(result so far, image)` is called as each image finishes (to save it at once: an
        interrupt or SIGTERM later in the run keeps it). `control`: the job's own interrupt and skip
        events (studio.service.queue.Job), so stopping one job never stops another; `iterations`: run
        only these batch-count iterations of the request (seeds and indexes as in the whole run)."""
        request.validate(samplers=None)
        with self._turn(control):
            self.progress = Progress(steps=request.steps, images=request.n_iter, started=time.monotonic())
            self.backend_for(request)  # what the backend refuses: before loading or resolving anything
            model = self.models.get(request.model)
            request = self.resolve(request, model).validate(samplers=self.samplers)  # 1. seed, size, names
            scheduler_for(self.samplers, request, model.pipe)  # 2. a sampler the model cannot use: before any work
            plan = self.plan(model, request)  # 3. mode inputs, ControlNets, refiner, networks, prompts
            steps = Steps(Progress(steps=total_steps(plan), images=request.n_iter, started=time.monotonic()),
                          self._interrupt, self._skip, on_step)
            self.progress = steps.progress
            return self._iterate(plan, steps, prompts_for, on_image, iterations or range(request.n_iter))  # 4.

    def plan(self, model: LoadedModel, request: GenerationRequest) -> RunPlan:
        """What every pass of the run needs, prepared once (refusals come before any sampling)."""
        if model.pipe.unet.config.in_channels != 4 and request.mode != "inpaint":
            # 9-channel inpainting UNets take a mask and a masked image with every step.
            raise RequestError(f"{model.entry.title} is an inpainting model: use it with an image and a mask (Inpaint)")
        backend = self.backend_for(request)
        inputs = modes.prepare(request)
        controls = prepare_controls(self.models.settings, model, request, inputs, self.preprocessors)
        refiner_model = self.refiner_for(model, request)
        networks = self.networks.apply(model, request)  # LoRA tags, embeddings, VAE (cached on the model)
        sampling = request.replace(prompt=networks.prompt, negative_prompt=networks.negative_prompt)
        # A1111 schedules prompt edits over the requested steps, also in img2img (where fewer run).
        with self.compiled.text_encoders_backend(model.pipe, model, self.models.settings, backend):
            prompts = prepare_prompts(model.pipe, sampling.prompt, sampling.negative_prompt, request.steps, request.clip_skip)
        if prompts.conditioning is not None and prompts.conditioning.parts and (refiner_model or controls.units):
            raise RequestError("prompts joined by AND work without the SDXL refiner and ControlNet units for now")
        if request.enable_hr:
            self.upscalers.get(request.hr_upscaler, "hr_upscaler")  # an unknown name fails before sampling
        if request.restore_faces:  # missing restorer or detector files: refused before sampling
            self.faces.check(request.face_restoration_model, "restore_faces")
        return RunPlan(model, request, sampling, inputs, controls, refiner_model, networks, prompts, self.samplers,
                       self.upscalers, self.models.settings, self.preprocessors, backend, self.compiled)

    def backend_for(self, request: GenerationRequest) -> str:
        """The UNet backend of this run (eager or openvino); RequestError for what openvino does not run."""
        backend = resolve_backend(self.backend_choice(), pick_device(self.models.settings.device))
        if backend == "openvino":
            check_request(request, sum(unit.enabled for unit in request.controlnet_units), request.uses_refiner)
        return backend

    def _iterate(self, plan: RunPlan, steps: Steps, prompts_for: PromptsFor | None, on_image: ImageCallback | None,
                 iterations: range) -> RunResult:
        request, images, skipped = plan.request, [], 0

        def result(interrupted: bool) -> RunResult:
            return RunResult(request, plan.model, list(images), interrupted, plan.controls, skipped, plan.networks,
                             plan.refiner)

        for iteration in iterations:
            steps.progress.image, steps.progress.step, steps.progress.phase = iteration, 0, ""
            first = iteration * request.batch_size
            seeds = [request.seed + first + i for i in range(request.batch_size)]
            image_prompts = [prompts_for(first + i) for i in range(request.batch_size)] if prompts_for else None
            steps.progress.denoised = None
            batch = self._sample(plan, seeds, image_prompts, steps)
            if self._interrupt.is_set():  # A1111 keeps the picture in progress: the model's x̂0 at the last step
                partial = [GeneratedImage(modes.finish(plan.inputs, img), s, first + i,
                                          image_prompts[i] if image_prompts else None,
                                          partial=f"{steps.progress.step}/{steps.progress.steps}")
                           for i, (img, s) in enumerate(zip(partial_images(plan, steps.progress), seeds))]
                images += partial
                if on_image is not None and partial:
                    so_far = result(True)
                    for item in partial:
                        on_image(so_far, item)
                return result(True)
            if self._skip.is_set():  # this iteration was cut short: drop it, go on with the next
                self._skip.clear()
                skipped += 1
                continue
            batch = [self._restore_faces(request, img) for img in batch]
            finished = [GeneratedImage(modes.finish(plan.inputs, img), s, first + i,
                                       image_prompts[i] if image_prompts else None)
                        for i, (img, s) in enumerate(zip(batch, seeds))]
            images += finished
            if on_image is not None:  # a batch's images finish together; each sees its whole batch
                so_far = result(False)
                for item in finished:
                    on_image(so_far, item)
        return result(False)

    def _restore_faces(self, request: GenerationRequest, image: Image.Image) -> Image.Image:
        """A1111's "Restore faces": before the inpaint overlay, with the request's restorer."""
        if not request.restore_faces:
            return image
        return self.faces.restore(image, request.face_restoration_model, request.code_former_weight)

    @staticmethod
    def _sample(plan: RunPlan, seeds: list[int], image_prompts: list[tuple[str, str]] | None,
                steps: Steps) -> list[Image.Image]:
        """One batch: the base pass, then hires fix or the refiner when the request asks for one."""
        output, more = base.sample(plan, seeds, image_prompts, steps)
        if more and plan.request.enable_hr:
            return hires.sample(plan, output, seeds, steps)
        if more and plan.refiner is not None:
            return refiner.sample(plan, output, seeds, steps)
        return list(output)

    # -- what the run resolves -------------------------------------------------------------------
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
        width, height = request.width or model.native_size, request.height or model.native_size
        if request.outpainting and request.init_image is not None:
            width, height = outpaint.sampling_size(request)  # the canvas's, as A1111's outpainting scripts
        return request.replace(
            seed=seed,
            subseed=subseed,
            width=width,
            height=height,
            model=model.entry.title,
            sampler_name=resolve_sampler_name(request.sampler_name, self.samplers),
            scheduler=schedule,
            vae=self.networks.resolve_vae(request.vae),
            hr_sampler_name=self._hires_sampler(request.hr_sampler_name),
            refiner_checkpoint=self.refiners.resolve(request.refiner_checkpoint).title if request.uses_refiner else None,
            face_restoration_model=(request.face_restoration_model or next(iter(self.faces.names()), "CodeFormer"))
            if request.restore_faces else request.face_restoration_model,
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

    def refiner_for(self, model: LoadedModel, request: GenerationRequest) -> Any:
        """The request's SDXL refiner, loaded once and kept (None without one)."""
        return refiner.refiner_for(self.refiners, self.samplers, model, request)

    # -- one job at a time -----------------------------------------------------------------------
    @contextmanager
    def _turn(self, control: RunControl | None) -> Iterator[None]:
        """The engine's one turn, with the job's own stop events (or fresh ones)."""
        with self._lock:
            self._runner = threading.get_ident()
            self._interrupt = control.interrupt if control is not None else threading.Event()
            self._skip = control.skip if control is not None else threading.Event()
            try:
                yield
            finally:
                self._runner = None

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

    def unload_model(self) -> None:
        """Free the resident model between jobs; the next job (or load) reads it again."""
        with self._lock:
            self.models.unload()

    def run_extras(self, images: list[Image.Image], request: ExtrasRequest) -> list[Image.Image]:
        """Upscale finished images (the Extras tab/API), one job at a time like generation."""
        request.validate(image_upscaler_names(self.upscalers.entries()), self.faces.missing)
        with self._lock:
            return [upscale_image(image, request, self.upscalers, self.faces) for image in images]

    def preview(self, latents: Any, method: str) -> Image.Image:
        """A live preview of the running job's latents (call from its step callback)."""
        model = self.models.loaded
        if model is None:
            raise ModelError("no model is loaded")
        return self.previewer.preview(latents, model.pipe, method)


def partial_images(plan: RunPlan, progress: Progress) -> list[Image.Image]:
    """The batch's x̂0 at the step an Interrupt stopped it, decoded (none before the first step)."""
    if progress.denoised is None or progress.step <= 0:
        return []
    pipe = plan.model.pipe
    x0 = progress.denoised.to(pipe.vae.device, pipe.vae.dtype)
    return [decode(pipe, x0[i:i + 1]) for i in range(x0.shape[0])]


def total_steps(plan: RunPlan) -> int:
    """Steps one iteration runs: the base pass's (fewer in img2img), then the hires pass's."""
    return plan.inputs.steps_to_run(plan.request) + hires.steps_to_run(plan.request)
