"""The Studio: models, engine and extensions wired together, and the one place every job enters.

It implements `studio.service.facade.StudioFacade` for the web layer and builds the UI context for the
Gradio tabs; `studio.cli.serve` launches it."""
from __future__ import annotations

import dataclasses
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

from PIL import Image

from studio.api import ExtensionContext
from studio.checkpoints.catalog import DEFAULT_MODEL_TITLE, ModelEntry, find_model
from studio.checkpoints.manager import ModelManager
from studio.checkpoints.upscalers import image_upscaler_names
from studio.control import pose
from studio.control.models import ControlNetEntry, controlnet_mismatch, discover_controlnets
from studio.control.preprocessors import PREPROCESSORS, PreprocessorSpec
from studio.control.units import control_image
from studio.errors import ModelError, StudioError
from studio.generation.engine import Engine, Progress
from studio.generation.extras import ExtrasRequest, face_restoration_unavailable
from studio.generation.previews import latent_preview
from studio.generation.samplers import SCHEDULE_TYPES, available_samplers
from studio.networks import listing
from studio.networks.embeddings import text_width
from studio.prompting.limits import check_prompts
from studio.prompting.styles import (
    Style,
    apply_request_styles,
    apply_styles,
    infotext_style_names,
    load_styles,
    save_style,
    unapply_styles,
)
from studio.records import storage
from studio.records.history import HistoryIndex
from studio.records.pnginfo import read_generation_info
from studio.records.reproduce import NoRecipeError, read_recipe, recipe_warnings
from studio.request import MAX_SEED, ControlUnit, GenerationRequest
from studio.service import jobs
from studio.service.batch import BatchResult, run_extras_folder, run_img2img_batch
from studio.service.extensions.hooks import save_output
from studio.service.extensions.loading import settings_view
from studio.service.extensions.manager import ExtensionManager
from studio.service.facade import LoadedInfo, Reproduction
from studio.service.queue import LOCAL, Job, JobCancelled, JobQueue, QueuedRuns
from studio.service.scripts import ScriptJob, run_script
from studio.service.users import outputs_for, user_names
from studio.service.zerogpu import GpuEngine, gpu_wrapper
from studio.settings import Settings

if TYPE_CHECKING:
    from studio.ui.context import UiContext


@dataclass
class Studio:
    settings: Settings
    models: ModelManager
    engine: Engine
    extensions: ExtensionManager
    # What jobs run on: the engine, or on a ZeroGPU Space the engine with each turn inside
    # spaces.GPU (studio/service/zerogpu.py). None: the engine.
    runner: Any = field(default=None, repr=False)
    history: HistoryIndex = field(init=False, repr=False)
    queue: JobQueue = field(init=False, repr=False)
    parallel_jobs: ClassVar[int] = 1  # one engine, one job at a time (studio.cluster runs more)
    queued_jobs: ClassVar[bool] = True  # jobs go through self.queue (per-caller interrupt, progress, fairness)

    def __post_init__(self) -> None:
        self.history = HistoryIndex(self.settings.outputs_dir)
        self.queue = JobQueue(self.settings.queue_size)
        self.users = user_names(self.settings)
        self._histories: dict[str, HistoryIndex] = {}
        self._acting = threading.local()  # whom submits on this thread are for (acting_for)

    @classmethod
    def create(cls, settings: Settings) -> "Studio":
        models = ModelManager(settings)
        extensions = ExtensionManager(settings).load_all()  # with --safe-mode: listed, none loaded
        engine = Engine(models, extensions.samplers, merged_preprocessors(extensions))
        on_gpu = gpu_wrapper()
        return cls(settings, models, engine, extensions, runner=GpuEngine(engine, on_gpu) if on_gpu else None)

    def submit(
        self, request: GenerationRequest, on_step: Callable[[Progress], None] | None = None, save: bool = True,
        directory: Path | None = None, owner: str | None = None, user: str | None = None, job: Job | None = None,
    ) -> jobs.JobResult:
        """The one entry for every generation (UI, API, scripts): validate, extension hooks, queue, run, save.
        `owner`: whose turn in the queue (and whose Interrupt stops it); `user`: whose outputs folder;
        `job`: a place the caller already took in the queue (enqueue)."""
        request = request.validate()
        check_prompts(request.prompt, request.negative_prompt, request.steps)  # before it takes a place
        if job is None and owner is None:  # e.g. a script's jobs: for whoever started the script
            owner, session, acting_user = getattr(self._acting, "who", None) or (LOCAL, None, None)
            user = user or acting_user
            job = self.enqueue(request, owner, session)
        job = job or self.enqueue(request, owner or LOCAL)
        try:
            return self._submit(request, on_step, save, directory, user, job)
        except JobCancelled:
            return jobs.JobResult(request, [], True)
        finally:
            self.queue.finish(job)

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

    def enqueue(self, request: GenerationRequest, owner: str, session: str | None = None) -> Job:
        """A place in the queue for this request (QueueFullError when it is full)."""
        return self.queue.add(owner, session, request.steps, request.n_iter)

    def _submit(self, request: GenerationRequest, on_step: Callable[[Progress], None] | None, save: bool,
                directory: Path | None, user: str | None, job: Job) -> jobs.JobResult:
        if request.styles:  # expanded before the hooks, so they see the prompts that will be used
            request = apply_request_styles(request, load_styles(self.settings))
        if request.seed == -1:  # drawn here so that before_generate hooks see the image's seed
            request = request.replace(seed=random.randint(0, MAX_SEED))
        if request.subseed_strength > 0 and request.subseed < 0:  # once per job: every turn uses the same one
            request = request.replace(subseed=random.randint(0, MAX_SEED))
        notices: list[str] = []
        request, params = self.extensions.before_generate(request, notices)
        after = partial(self.extensions.after_image, notices=notices) if self.extensions.after_hooks else None
        per_image = self.extensions.image_prompts(request, notices) if self.extensions.image_hooks else None
        result = jobs.generate(request, QueuedRuns(self.runner or self.engine, self.queue, job), self.user_settings(user), on_step,
                              save=save, after_image=after, params=params, directory=directory, image_prompts=per_image)
        return dataclasses.replace(result, notices=tuple(notices))

    def user_settings(self, user: str | None) -> Settings:
        """The settings a user's jobs run with: outputs/<user>/ when several users share the studio."""
        return self.settings.replace(outputs_dir=outputs_for(self.settings.outputs_dir, self.users, user))

    def history_for(self, user: str | None) -> HistoryIndex:
        root = outputs_for(self.settings.outputs_dir, self.users, user)
        if root == self.settings.outputs_dir:
            return self.history
        return self._histories.setdefault(str(root), HistoryIndex(root))

    def _stop_session(self, session: str, skip: bool) -> None:
        """A browser tab's Interrupt/Skip (and its closing): that session's jobs only, unless --admin-interrupt."""
        if self.settings.admin_interrupt:
            self.engine.skip() if skip else self.engine.interrupt()
        elif skip:
            self.queue.skip(session=session)
        else:
            self.queue.interrupt(session=session)

    def caller_job(self, owner: str) -> Job | None:
        """The owner's running job, else its first queued one."""
        found = self.queue.jobs(owner=owner)
        return found[0] if found else None

    def extension_context(
        self, progress: Callable[[float, str], None] = lambda f, d: None, notify: Callable[[str], None] = lambda t: None
    ) -> ExtensionContext:
        """The narrow context extension tabs and scripts get; hook notices go to `notify`."""
        def submit(request: GenerationRequest) -> jobs.JobResult:
            job = self.submit(request)
            for notice in job.notices:
                notify(notice)
            return job

        return ExtensionContext(
            submit=submit, settings=settings_view(self.settings), samplers=MappingProxyType(self.engine.samplers),
            model_titles=self.models.titles, current_model=lambda: self.models.current().entry.title,
            load_model=self.load_model, save_image=partial(save_output, self.settings.outputs_dir), progress=progress,
        )

    def read_png(self, path: Path) -> dict[str, Any]:
        """PNG Info: the PNG's parameters; when its infotext names styles that are here and its
        prompts are exactly those styles applied, the fields hold the bare prompts and the styles
        (as A1111 pastes them), so Generate styles them once, to the same prompts."""
        info = read_generation_info(path)
        names = infotext_style_names(info["params"])
        fields = info["fields"]
        if names and "prompt" in fields:
            bare = unapply_styles(fields["prompt"], fields.get("negative_prompt", ""), names, load_styles(self.settings))
            if bare is not None:
                info["fields"] = {**fields, "prompt": bare[0], "negative_prompt": bare[1], "styles": names}
        return info

    def prompt_styles(self) -> dict[str, Style]:
        """The styles of styles.csv (the user's, else the shipped example), by name, in file order."""
        return load_styles(self.settings)

    def style_names(self) -> list[str]:
        return list(load_styles(self.settings))

    def apply_styles(self, prompt: str, negative_prompt: str, names: list[str]) -> tuple[str, str]:
        """Both prompts with the named styles expanded (what "apply" puts into the prompt boxes)."""
        return apply_styles(prompt, negative_prompt, names, load_styles(self.settings))

    def save_style(self, name: str, prompt: str, negative_prompt: str) -> list[str]:
        """Save the prompts as a style in the user's styles file; returns the style names."""
        return list(save_style(self.settings, Style(name, prompt, negative_prompt)))

    def load_model(self, title: str) -> str:
        return self.engine.load_model(title).entry.title

    @property
    def annotators_dir(self) -> Path:
        return self.settings.models_dir / "annotators"

    def preview_control(self, unit: ControlUnit, source: Any, width: int, height: int) -> Any:
        """The control image the engine would use for this unit (same function, same arguments)."""
        return control_image(unit, source, width, height, self.annotators_dir, self.engine.preprocessors)

    def controlnet_models(self) -> list[tuple[str, str]]:
        entries = discover_controlnets(self.settings, self.models.current().folder)
        return [(entry.title, entry.control_type) for entry in entries]

    def control_preprocessors(self) -> dict[str, tuple[Any, str | None]]:
        return {name: (spec, spec.unavailable_reason(self.annotators_dir))
                for name, spec in self.engine.preprocessors.items()}

    def live_preview(self, progress: Progress) -> Any:
        """The preview image for this step when one is due (every N steps, by the set method), else None."""
        every, latents = self.settings.live_preview_every, progress.latents
        if every <= 0 or latents is None or progress.step % every or progress.step >= progress.steps:
            return None
        try:
            return self.engine.preview(latents, self.settings.live_preview_method)
        except (ValueError, StudioError):
            return None  # a preview that cannot be made (no TAESD weights) must not stop the image

    def settings_summary(self) -> dict[str, Any]:
        s = self.settings
        return {"models_dir": str(s.models_dir), "outputs_dir": str(s.outputs_dir),
                "extensions_dir": str(s.extensions_dir), "device": s.device, "dtype": s.dtype,
                "allow_pickle": s.allow_pickle, "safe_mode": s.safe_mode, "host": s.host, "port": s.port,
                "share": s.share, "auth": "set" if s.auth else "off", "styles_file": str(s.styles_file),
                "live_preview_every": s.live_preview_every, "live_preview_method": s.live_preview_method}

    def ui_context(self) -> "UiContext":
        from studio.ui.context import UiContext  # the UI layer is imported only when a UI is built

        return UiContext(
            submit=self.submit,
            interrupt=self.engine.interrupt,
            skip=self.engine.skip,
            sampler_names=lambda: list(self.engine.samplers),
            schedule_types=lambda: list(SCHEDULE_TYPES),
            model_titles=self.models.titles,
            current_model=lambda: self.models.current().entry.title,
            load_model=self.load_model,
            native_size=lambda: self.models.current().native_size,
            read_png=self.read_png,
            settings_summary=self.settings_summary,
            error_types=(ValueError, StudioError),
            extension_rows=self.extensions.rows,
            extension_refusal=self.extensions.change_refusal,
            set_extension_enabled=self.extensions.set_enabled,
            extension_tabs=lambda: self.extensions.guarded_tabs(self.extension_context()),
            scripts=lambda: self.extensions.guarded_scripts(self.extension_context),
            safe_mode=self.settings.safe_mode,
            preview_control=self.preview_control,
            live_preview=self.live_preview,
            controlnet_models=self.controlnet_models,
            control_preprocessors=self.control_preprocessors,
            pose_tools=lambda: pose,
            reproduce_warnings=self.reproduce_warnings,
            reproduce=self.reproduce,
            style_names=self.style_names,
            apply_styles=self.apply_styles,
            save_style=self.save_style,
            lora_names=lambda: [item["name"] for item in self.lora_items()],
            embedding_names=lambda: sorted(self.embedding_items()["loaded"]),
            vae_names=self.vae_names,
            selected_vae=self.selected_vae,
            select_vae=self.select_vae,
            upscaler_names=self.engine.upscalers.names,
            image_upscaler_names=self.image_upscaler_names,
            run_extras=lambda images, values, user=None: self.run_extras(images, values, user=user),
            face_restoration_unavailable=face_restoration_unavailable,
            history_page=lambda page, per_page, query, user=None: self.history_for(user).page(page, per_page, query),
            delete_output=lambda path, user=None: self.history_for(user).delete(path),
            enqueue=self.enqueue,
            queue_text=lambda job: self.queue.place(job).text() if job.queued else "",
            interrupt_session=partial(self._stop_session, skip=False),
            skip_session=partial(self._stop_session, skip=True),
            close_session=lambda session: self.queue.interrupt(session=session),
            acting_for=self.acting_for,
            cancel_job=self.queue.cancel,
            img2img_batch=self.img2img_batch,
            extras_folder=self.extras_folder,
        )

    def img2img_batch(self, request: GenerationRequest, input_dir: str | Path, output_dir: str | Path | None = None,
                      mask_dir: str | Path | None = None,
                      progress: Callable[[float, str], None] = lambda f, d: None,
                      user: str | None = None) -> BatchResult:
        """A1111's img2img "Batch" tab: every image of a server folder (studio/service/batch.py, studio/service/folders.py);
        a shared studio's user works in outputs/<user>/."""
        return run_img2img_batch(self, request, input_dir, output_dir, mask_dir, progress, user)

    def extras_folder(self, values: Mapping[str, Any], input_dir: str | Path, output_dir: str | Path | None = None,
                      progress: Callable[[float, str], None] = lambda f, d: None,
                      user: str | None = None) -> BatchResult:
        """Extras' "Batch from directory": upscale every image of a server folder."""
        return run_extras_folder(self, values, input_dir, output_dir, progress, user)

    def run_extras(self, images: list[Any], values: Mapping[str, Any], save: bool = True,
                   user: str | None = None) -> tuple[list[Any], str]:
        """Upscale images with the Extras fields (A1111 names); saved to outputs/extras-images when `save`.
        Returns (saved paths, or the images when not saved; the info text)."""
        request = ExtrasRequest.from_dict(values)
        results = self.engine.run_extras([image for image in images], request)
        info = request.info()
        if not save:
            return results, info
        directory = storage.output_dir(self.user_settings(user).outputs_dir, "extras")
        return [storage.save_png(image, directory, 0, info) for image in results], info

    def upscalers(self) -> Mapping[str, Any]:
        return self.engine.upscalers.entries()

    def image_upscaler_names(self) -> list[str]:
        return image_upscaler_names(self.engine.upscalers.entries())

    def reproduce_warnings(self, path: Path) -> list[str]:
        """Why a reproduction of this PNG may differ here (model hash, library versions, threads)."""
        try:
            return recipe_warnings(read_recipe(path), self.models)
        except NoRecipeError as error:
            return [str(error)]

    def reproduce(self, path: Path, user: str | None = None) -> tuple[str | None, str, list[str]]:
        """Regenerate the PNG's image from its recipe and save it (in the user's outputs); returns
        (path, infotext, warnings)."""
        result = self.reproduce_image(path, save=True, user=user)
        saved = result.image
        return (str(saved.path) if saved.path else None), saved.infotext, result.warnings

    def reproduce_image(self, source: Path | Image.Image, save: bool = False, user: str | None = None) -> Reproduction:
        """Regenerate the image from its recipe. The recipe's request already went through the
        before_generate hooks when it was made, so they are not run again (a hook that appends to the
        prompt would append twice); after_image hooks are, since they changed the saved pixels."""
        recipe = read_recipe(source)
        self._refuse_unknown_model(recipe.request.model)
        check_prompts(recipe.request.prompt, recipe.request.negative_prompt, recipe.request.steps)
        warnings = recipe_warnings(recipe, self.models)
        notices: list[str] = []
        after = partial(self.extensions.after_image, notices=notices) if self.extensions.after_hooks else None
        job = jobs.generate(recipe.request, self.runner or self.engine, self.user_settings(user), save=save, after_image=after,
                            image_prompts=recipe.image_prompts())
        if job.interrupted or recipe.position >= len(job.images):
            raise StudioError("the reproduction was interrupted")
        return Reproduction(job.images[recipe.position], job.request, warnings + notices)

    def _refuse_unknown_model(self, title: str | None) -> None:
        """A PNG names its model; only a model discovered here may run (never a path or a Hub id)."""
        if title is not None and title not in self.models.titles():
            raise ModelError(f"this PNG was made with model {title[:200]!r}, which is not among the models here "
                             "(models/Stable-diffusion); place it there to reproduce the image")

    # The rest of studio.service.facade.StudioFacade: what the web layer may ask.

    def samplers(self) -> Mapping[str, Any]:
        return MappingProxyType(self.engine.samplers)

    def sampler_reasons(self) -> Mapping[str, str | None]:
        """Why each sampler cannot run on the loaded model (None: it can); nothing is loaded here."""
        loaded = self.models.loaded
        if loaded is None:
            return {}
        return available_samplers(loaded.pipe.scheduler.config, self.engine.samplers)

    def model_entries(self) -> list[ModelEntry]:
        return self.models.entries()

    def loaded_info(self) -> LoadedInfo | None:
        loaded = self.models.loaded
        if loaded is None:
            return None
        return LoadedInfo(loaded.entry, loaded.hash, int(loaded.pipe.vae_scale_factor))

    def controlnet_entries(self, model_title: str | None) -> list[ControlNetEntry]:
        """The ControlNets for the model a request runs on: shipped beside it, then models/ControlNet.
        Nothing is loaded here (a listing must not load a model outside the engine's lock)."""
        loaded = self.models.loaded
        if model_title is None and loaded is not None:
            entry = loaded.entry
        else:
            entry = find_model(model_title or self.settings.model or DEFAULT_MODEL_TITLE, self.settings)
        folder = entry.path if entry.kind in ("default", "diffusers") else None  # as LoadedModel.folder
        return discover_controlnets(self.settings, folder)

    def controlnet_fit(self) -> Mapping[str, str | None]:
        """Each ControlNet of the loaded model's list with why it does not fit it (None: it fits)."""
        loaded = self.models.loaded
        if loaded is None:
            return {}
        return {entry.title: controlnet_mismatch(entry, loaded.pipe.unet.config)
                for entry in self.controlnet_entries(None)}

    def preprocessors(self) -> Mapping[str, PreprocessorSpec]:
        return MappingProxyType(self.engine.preprocessors)

    def busy(self) -> bool:
        return self.engine.busy

    def progress(self) -> Progress:
        return self.engine.progress

    def interrupt(self, owner: str | None = None) -> None:
        """Stop the owner's jobs (running: within one step; queued: cancelled); None: the running job."""
        if owner is None:
            self.engine.interrupt()
        else:
            self.queue.interrupt(owner=owner)

    def skip(self, owner: str | None = None) -> None:
        if owner is None:
            self.engine.skip()
        else:
            self.queue.skip(owner=owner)

    def run_script(self, request: GenerationRequest, script_name: str, script_args: Sequence[Any] = (),
                   owner: str | None = None, user: str | None = None) -> ScriptJob:
        """Run an extension's script by name with A1111's positional script_args (ScriptRequestError: 4xx);
        its jobs are queued under `owner` and saved in the user's outputs."""
        with self.acting_for(owner or LOCAL, None, user):
            return run_script(self, request, script_name, script_args)

    def lora_items(self) -> list[dict[str, Any]]:
        return listing.lora_items(self.settings)

    def embedding_items(self) -> dict[str, dict[str, Any]]:
        loaded = self.models.loaded
        return listing.embedding_items(self.settings, text_width(loaded.pipe) if loaded is not None else None)

    def vae_items(self) -> list[dict[str, str]]:
        return listing.vae_items(self.settings)

    def vae_names(self) -> list[str]:
        return self.engine.networks.vae_names()

    def selected_vae(self) -> str:
        return self.engine.networks.selected_vae

    def select_vae(self, name: str) -> str:
        """The VAE of requests that name none (A1111's sd_vae); loaded with the next generation."""
        return self.engine.networks.select_vae(name)

    def preview(self, method: str, job: Job | None = None) -> Image.Image | None:
        """The running job's (or this job's) latest latents as an image ("approx" or "vae"); None when idle."""
        if job is not None:
            latents = getattr(job.progress, "latents", None) if job.state == "running" else None
        else:
            latents = self.engine.progress.latents if self.engine.busy else None
        loaded = self.models.loaded
        if latents is None or loaded is None:
            return None
        vae = loaded.pipe.vae if method == "vae" else None
        return latent_preview(latents, int(loaded.pipe.vae_scale_factor), vae)


def merged_preprocessors(extensions: ExtensionManager) -> dict[str, PreprocessorSpec]:
    """Core preprocessors plus the extensions' (run guarded and attributed, with their own
    default parameters; they feed any control type)."""
    merged = dict(PREPROCESSORS)
    for name, spec in extensions.preprocessors.items():
        def run(image: Any, a: float, b: float, name: str = name, params: dict = dict(spec.params)) -> Any:
            return extensions.run_preprocessor(name, image, **params)

        merged[name] = PreprocessorSpec(run, "any")
    return merged
