"""Generation on this machine: every job is admitted, waits its turn in the fair queue, runs on the
one engine (or, on a ZeroGPU Space, inside spaces.GPU) and is saved with its records."""
from __future__ import annotations

import dataclasses
import random
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Iterator

from PIL import Image

from studio.errors import ModelError, StudioError
from studio.generation.engine import Engine
from studio.generation.previews import latent_preview
from studio.generation.results import Progress
from studio.records.reproduce import NoRecipeError, read_recipe, recipe_warnings
from studio.request import MAX_SEED, GenerationRequest
from studio.service import jobs
from studio.service.admission import admit
from studio.service.extensions.manager import ExtensionManager
from studio.service.generation_base import GenerationService, StepCallback
from studio.service.grids import with_grid
from studio.service.options import OptionsService
from studio.service.outputs import OutputService
from studio.service.queue import LOCAL, Job, JobCancelled, JobQueue, QueuedRuns
from studio.service.results import JobResult, Reproduction
from studio.service.styles import StyleService
from studio.settings import Settings


class LocalGeneration(GenerationService):
    parallel_jobs = 1  # one engine, one job at a time

    def __init__(self, settings: Settings, engine: Engine, extensions: ExtensionManager, styles: StyleService,
                 outputs: OutputService, runner: Any = None, options: OptionsService | None = None) -> None:
        self.settings = settings
        self.engine = engine
        # What jobs run on: the engine, or on a ZeroGPU Space the engine with each turn inside
        # spaces.GPU (studio/service/zerogpu.py).
        self.runner = runner or engine
        self.extensions = extensions
        self.styles = styles
        self.outputs = outputs
        self.options = options  # A1111's options applied to each job (clip skip, saving, previews)
        self.queue = JobQueue(settings.queue_size, per_user=settings.queue_per_user)
        self._acting = threading.local()  # whom submits on this thread are for (acting_for)
        self._submitting: set[int] = set()  # threads inside submit (a SIGTERM there only interrupts)

    # -- jobs --------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, on_step: StepCallback | None = None, save: bool = True,
               directory: Path | None = None, owner: str | None = None, user: str | None = None,
               job: Job | None = None) -> JobResult:
        request = admit(request, self.control_units())  # before it takes a place
        if job is None and owner is None:  # e.g. a script's jobs: for whoever started the script
            owner, session, acting_user = getattr(self._acting, "who", None) or (LOCAL, None, None)
            user = user or acting_user
            job = self.enqueue(request, owner, session)
        job = job or self.enqueue(request, owner or LOCAL)
        self._submitting.add(threading.get_ident())
        try:
            return self._run(request, on_step, save, directory, user, job)
        except JobCancelled:
            return JobResult(request, [], True)
        finally:
            self._submitting.discard(threading.get_ident())
            self.queue.finish(job)

    def enqueue(self, request: GenerationRequest, owner: str, session: str | None = None) -> Job:
        return self.queue.add(owner, session, request.steps, request.n_iter)

    @contextmanager
    def acting_for(self, owner: str, session: str | None = None, user: str | None = None) -> Iterator[None]:
        """Jobs submitted on this thread without an owner (a script's, an extension's) are this caller's:
        its Interrupt stops them, its turn and outputs folder are theirs."""
        previous = getattr(self._acting, "who", None)
        self._acting.who = (owner, session, user)
        try:
            yield
        finally:
            self._acting.who = previous

    def acting_user(self) -> str | None:
        who = getattr(self._acting, "who", None)
        return who[2] if who else None

    def _run(self, request: GenerationRequest, on_step: StepCallback | None, save: bool, directory: Path | None,
             user: str | None, job: Job) -> JobResult:
        request = self.styles.expand(request)  # before the hooks, so they see the prompts that will be used
        pattern, own_folder, save_grid = "", directory is None and getattr(self._acting, "who", None) is None, save
        if self.options is not None:
            request, save, pattern = self.options.job_request(request), save and self.options.get("samples_save"), \
                self.options.get("samples_filename_pattern")
            directory = directory or (self.options.save_folder(request.mode) if user is None else None)
        if request.seed == -1:  # drawn here so that before_generate hooks see the image's seed
            request = request.replace(seed=random.randint(0, MAX_SEED))
        if request.subseed_strength > 0 and request.subseed < 0:  # once per job: every turn uses the same one
            request = request.replace(subseed=random.randint(0, MAX_SEED))
        notices: list[str] = []
        request, params = self.extensions.before_generate(request, notices)
        after = partial(self.extensions.after_image, notices=notices) if self.extensions.after_hooks else None
        per_image = self.extensions.image_prompts(request, notices) if self.extensions.image_hooks else None
        result = jobs.generate(request, QueuedRuns(self.runner, self.queue, job), self.outputs.user_settings(user),
                               on_step, save=save, after_image=after, params=params, directory=directory,
                               image_prompts=per_image, name_pattern=pattern)
        result = dataclasses.replace(result, notices=tuple(notices))
        if self.options is not None and own_folder:  # a script's or the command line's jobs: no batch grid
            result = with_grid(result, self.outputs.user_settings(user).outputs_dir, self.options.get("return_grid"),
                               save_grid and self.options.get("grid_save"), self.options.get("n_rows"))
        return result

    def control_units(self) -> int:
        """The options store's `control_net_unit_count` (changed through /sdapi/v1/options), else the flag's."""
        return self.options.control_units() if self.options is not None else self.settings.control_net_unit_count

    # -- following and stopping ----------------------------------------------------------------------
    def busy(self) -> bool:
        return self.engine.busy

    def progress(self) -> Progress:
        return self.engine.progress

    def interrupt(self, owner: str | None = None, session: str | None = None) -> None:
        if (owner is None and session is None) or self.settings.admin_interrupt:  # A1111's way: the running job
            self.engine.interrupt()
        else:
            self.queue.interrupt(owner=owner, session=session)

    def skip(self, owner: str | None = None, session: str | None = None) -> None:
        if (owner is None and session is None) or self.settings.admin_interrupt:
            self.engine.skip()
        else:
            self.queue.skip(owner=owner, session=session)

    def has_jobs(self) -> bool:
        return self.engine.busy or bool(self.queue.jobs())

    def runs_on_this_thread(self) -> bool:
        return threading.get_ident() in self._submitting or self.engine.running_here

    def stop_all(self) -> None:
        self.queue.interrupt()  # every job: queued ones leave, the running one stops after its step
        self.engine.interrupt()

    def interrupt_pending(self) -> bool:
        return self.engine.interrupted

    def preview(self, method: str, job: Job | None = None) -> Image.Image | None:
        """"approx" or "vae" (decoded with the model's VAE: slower, exact colours)."""
        if job is not None:
            latents = _picture_latents(job.progress) if job.state == "running" else None
        else:
            latents = _picture_latents(self.engine.progress) if self.engine.busy else None
        loaded = self.engine.models.loaded
        if latents is None or loaded is None:
            return None
        vae = loaded.pipe.vae if method == "vae" else None
        return latent_preview(latents, int(loaded.pipe.vae_scale_factor), vae)

    def live_preview(self, progress: Any) -> Image.Image | None:
        every, latents = self.settings.live_preview_every, _picture_latents(progress)
        method = self.settings.live_preview_method
        if self.options is not None:  # the Settings page's choice, applied at once
            every, method = self.options.preview_every(), self.options.get("show_progress_type")
        if every <= 0 or latents is None or progress.step % every or progress.step >= progress.steps:
            return None
        try:
            return self.engine.preview(latents, method)
        except (ValueError, StudioError):
            return None  # a preview that cannot be made (no TAESD weights) must not stop the image

    # -- reproduce and folders -------------------------------------------------------------------------
    def reproduce_warnings(self, path: Path) -> list[str]:
        """Why a reproduction of this PNG may differ here (model hash, library versions, threads)."""
        try:
            return recipe_warnings(read_recipe(path), self.engine.models)
        except NoRecipeError as error:
            return [str(error)]

    def reproduce_image(self, source: Path | Image.Image, save: bool = False, user: str | None = None,
                        owner: str | None = None) -> Reproduction:
        """The recipe's request already went through the before_generate hooks when it was made, so they
        are not run again (a hook that appends to the prompt would append twice); after_image hooks
        are, since they changed the saved pixels."""
        recipe = read_recipe(source)
        refuse_unknown_model(recipe.request.model, self.engine.models.titles())
        admit(recipe.request, self.control_units())
        warnings = recipe_warnings(recipe, self.engine.models)
        notices: list[str] = []
        after = partial(self.extensions.after_image, notices=notices) if self.extensions.after_hooks else None
        place = self.enqueue(recipe.request, owner or LOCAL)  # the same queue, limits and share as a job
        try:
            job = jobs.generate(recipe.request, QueuedRuns(self.runner, self.queue, place), self.outputs.user_settings(user),
                                save=save, after_image=after, image_prompts=recipe.image_prompts())
        finally:
            self.queue.finish(place)
        if job.interrupted or recipe.position >= len(job.images):
            raise StudioError("the reproduction was interrupted")
        return Reproduction(job.images[recipe.position], job.request, warnings + notices)


def refuse_unknown_model(title: str | None, titles: list[str]) -> None:
    """A PNG names its model; only a model discovered here may run (never a path or a Hub id)."""
    if title is not None and title not in titles:
        raise ModelError(f"this PNG was made with model {title[:200]!r}, which is not among the models here "
                         "(models/Stable-diffusion); place it there to reproduce the image")


def _picture_latents(progress: Any) -> Any:
    """What a preview shows: the model's x̂0 at this step (the picture), else the noisy latents."""
    denoised = getattr(progress, "denoised", None)
    return denoised if denoised is not None else getattr(progress, "latents", None)
